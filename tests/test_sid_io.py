"""sid_io: names, ratios, list files, raw packing against the paper's formula, bad inputs."""
import errno
import os
import re
import threading

import numpy as np
import pytest

import make_dataset
import sid_io
from conftest import ctrl_c_enabled


def write_raw(path, bayer, iso=200, fnumber=8.0, exposure=0.1, **camera):
    make_dataset.write_dng(str(path), np.asarray(bayer, dtype=np.uint16), iso, fnumber, exposure,
                           **camera)
    return str(path)


def random_bayer(shape=(48, 64), seed=0):
    # Include values below the black level and at the white level: both clip in pack_raw.
    return np.random.default_rng(seed).integers(0, sid_io.WHITE_LEVEL + 1, size=shape)


# ---------------------------------------------------------------- names and ratios

def test_parse_name_reads_scene_burst_and_exposure():
    assert sid_io.parse_name('/x/Sony/short/10019_00_0.033s.ARW') == (10019, 0, 0.033)
    assert sid_io.parse_name('00001_07_10s.dng') == (1, 7, 10.0)


@pytest.mark.parametrize('name', ['10019_00_0.033.ARW', '1001_00_0.1s.ARW', 'scene.dng',
                                  '10019_00_s.ARW', '10019_00_0s.ARW'])
def test_parse_name_rejects_names_without_exposure(name):
    with pytest.raises(sid_io.SidError, match=name.replace('.', r'\.')):
        sid_io.parse_name(name)


def test_exposure_ratio_gives_the_three_sony_ratios_capped_at_300():
    long_ = '00001_00_10s.ARW'
    shorts = ['00001_00_%ss.ARW' % t for t in ('0.1', '0.04', '0.033')]
    ratios = [sid_io.exposure_ratio(short, long_) for short in shorts]
    assert ratios == pytest.approx([100, 250, 300])
    assert sid_io.exposure_ratio('00001_00_0.033s.ARW', long_) == sid_io.MAX_RATIO  # 303 -> 300


# ---------------------------------------------------------------- list files

def test_read_list_resolves_paths_and_keeps_line_numbers(tiny_dataset):
    pairs = sid_io.read_list(str(tiny_dataset / 'Sony_train_list.txt'), str(tiny_dataset))
    assert len(pairs) == 6
    first = pairs[0]
    assert first.short == os.path.normpath(str(tiny_dataset / 'Sony/short/00001_00_0.04s.dng'))
    assert first.long == os.path.normpath(str(tiny_dataset / 'Sony/long/00001_00_10s.dng'))
    assert first.iso.startswith('ISO') and first.fnumber.startswith('F') and first.line == 1
    assert [p.line for p in pairs] == list(range(1, 7))


def write_text(path, text):
    path.write_text(text)
    return str(path)


def test_read_list_missing_field_names_file_and_line(tiny_dataset, tmp_path):
    good = (tiny_dataset / 'Sony_train_list.txt').read_text().splitlines()
    bad = write_text(tmp_path / 'l.txt', '\n'.join([good[0], ' '.join(good[1].split()[:3])]))
    with pytest.raises(sid_io.SidError, match=r'l\.txt:2: expected 4 fields'):
        sid_io.read_list(bad, str(tiny_dataset))


def test_read_list_missing_file_names_line_and_path(tiny_dataset, tmp_path):
    bad = write_text(tmp_path / 'l.txt',
                     './Sony/short/00009_00_0.1s.dng ./Sony/long/00009_00_10s.dng ISO100 F8\n')
    with pytest.raises(sid_io.SidError, match=r'l\.txt:1: file not found: .*00009_00_0\.1s\.dng'):
        sid_io.read_list(bad, str(tiny_dataset))


def test_read_list_bad_exposure_name_and_bad_iso(tiny_dataset, tmp_path):
    bad = write_text(tmp_path / 'l.txt', './Sony/short/00001_00.dng ./Sony/long/00001_00_10s.dng '
                                         'ISO100 F8\n')
    with pytest.raises(sid_io.SidError, match=r'l\.txt:1: .*00001_00\.dng: file name does not'):
        sid_io.read_list(bad, str(tiny_dataset), check_files=False)
    bad = write_text(tmp_path / 'm.txt', './Sony/short/00001_00_0.1s.dng '
                                         './Sony/long/00001_00_10s.dng 100 F8\n')
    with pytest.raises(sid_io.SidError, match=r'm\.txt:1: ISO and F fields'):
        sid_io.read_list(bad, str(tiny_dataset), check_files=False)


def test_read_list_unreadable_list_names_it(tmp_path):
    with pytest.raises(sid_io.SidError, match='nope.txt: cannot read list file'):
        sid_io.read_list(str(tmp_path / 'nope.txt'), str(tmp_path))


def test_list_line_round_trips_through_the_parser(tmp_path):
    line = sid_io.format_list_line('./Sony/short/00001_00_0.04s.ARW',
                                   './Sony/long/00001_00_10s.ARW', 200, 5.6)
    assert line == './Sony/short/00001_00_0.04s.ARW ./Sony/long/00001_00_10s.ARW ISO200 F5.6'
    sid_io.write_list([line], str(tmp_path / 'l.txt'))
    pair, = sid_io.read_list(str(tmp_path / 'l.txt'), str(tmp_path), check_files=False)
    assert (pair.iso, pair.fnumber) == ('ISO200', 'F5.6')


LINE = './Sony/short/00001_00_0.1s.dng ./Sony/long/00001_00_10s.dng ISO100 F8'


@pytest.mark.parametrize('line, message', [
    ('./Sony/long/00001_00_10s.dng ./Sony/short/00001_00_0.1s.dng ISO100 F8',
     r'the short-exposure column names .*long/00001_00_10s\.dng, in a long/ folder: are the two '
     r'columns swapped\?'),
    ('./Sony/short/00001_00_0.1s.dng ./Sony/short/00001_01_10s.dng ISO100 F8',
     r'the long-exposure column names .*, in a short/ folder'),
    ('./Sony/short/00001_00_0.1s.dng ./Sony/long/00002_00_10s.dng ISO100 F8',
     r'short exposure of scene 00001 paired with the long exposure of scene 00002'),
    ('./Sony/short/00001_00_10s.dng ./Sony/long/00001_00_0.1s.dng ISO100 F8',
     r'short exposure 10s is not shorter than the long exposure 0\.1s \(the ratio long / short '
     r'must be > 1\)'),
    ('./Sony/short/00001_00_10s.dng ./Sony/long/00001_00_10s.dng ISO100 F8',
     r'short exposure 10s is not shorter than the long exposure 10s'),
])
def test_read_list_rejects_pairs_that_make_no_sense(tmp_path, line, message):
    bad = write_text(tmp_path / 'l.txt', LINE + '\n' + line + '\n')
    with pytest.raises(sid_io.SidError, match=r'^%s:2: %s' % (re.escape(bad), message)):
        sid_io.read_list(bad, str(tmp_path), check_files=False)


def test_read_list_rejects_a_short_exposure_listed_twice(tmp_path):
    bad = write_text(tmp_path / 'l.txt', '\n'.join([
        LINE, LINE.replace('_00_0.1s', '_01_0.1s'), LINE.replace('10s', '30s')]))
    with pytest.raises(sid_io.SidError, match=r'l\.txt:3: short exposure .*00001_00_0\.1s\.dng '
                                              r'is already paired on line 1$'):
        sid_io.read_list(bad, str(tmp_path), check_files=False)


def test_official_lists_pass_the_pair_checks(tmp_path):
    """The authors' list lines are sane pairs; e.g. Sony_test_list.txt's first and last lines."""
    lines = ['./Sony/short/10003_00_0.04s.ARW ./Sony/long/10003_00_10s.ARW ISO200 F9',
             './Sony/short/10003_00_0.1s.ARW ./Sony/long/10003_00_10s.ARW ISO200 F9',
             './Sony/short/10227_09_0.1s.ARW ./Sony/long/10227_00_30s.ARW ISO400 F4']
    path = write_text(tmp_path / 'l.txt', '\n'.join(lines) + '\n')
    assert len(sid_io.read_list(path, str(tmp_path), check_files=False)) == 3


def test_read_list_not_utf8_names_file_and_line(tmp_path):
    bad = tmp_path / 'l.txt'
    bad.write_bytes(LINE.encode() + b'\n./Sony/short/00001_01_0.1s.dng caf\xe9 ISO100 F8\n')
    with pytest.raises(sid_io.SidError) as e:
        sid_io.read_list(str(bad), str(tmp_path), check_files=False)
    assert str(e.value) == '%s:2: not a UTF-8 text list file (byte 0xe9)' % bad


def test_read_list_given_a_raw_file_names_it(tiny_dataset):
    raw = str(tiny_dataset / 'Sony/long/00001_00_10s.dng')
    with pytest.raises(sid_io.SidError) as e:
        sid_io.read_list(raw, str(tiny_dataset))
    assert re.match(r'^%s:\d+: not a (UTF-8 )?text list file \((byte 0x[0-9a-f]{2}|NUL byte)\)$'
                    % re.escape(raw), str(e.value)), str(e.value)


def test_read_list_strips_a_utf8_bom(tmp_path):
    path = tmp_path / 'l.txt'
    path.write_bytes(b'\xef\xbb\xbf' + LINE.encode() + b'\n')
    pair, = sid_io.read_list(str(path), str(tmp_path), check_files=False)
    assert pair.short == os.path.normpath(str(tmp_path / 'Sony/short/00001_00_0.1s.dng'))
    bad = tmp_path / 'm.txt'  # the line of a bad byte counts lines after the BOM, too
    bad.write_bytes(b'\xef\xbb\xbf' + LINE.encode() + b'\n\xe9\n')
    with pytest.raises(sid_io.SidError, match=r'm\.txt:2: not a UTF-8 text list file'):
        sid_io.read_list(str(bad), str(tmp_path), check_files=False)


# ---------------------------------------------------------------- packing

def test_pack_raw_equals_the_paper_formula_exactly(tmp_path):
    bayer = random_bayer()
    path = write_raw(tmp_path / '00001_00_0.1s.dng', bayer)
    packed = sid_io.pack_raw(path)
    im = np.maximum(bayer.astype(np.float32) - 512, 0) / (16383 - 512)
    expected = np.concatenate([im[0::2, 0::2, None], im[0::2, 1::2, None],
                               im[1::2, 1::2, None], im[1::2, 0::2, None]], axis=2)
    assert packed.dtype == np.float32 and packed.shape == (24, 32, 4)
    np.testing.assert_array_equal(packed, expected)
    amplified = sid_io.amplify(packed, 250)
    np.testing.assert_array_equal(amplified, np.minimum(expected * 250, 1.0))


def test_pack_bayer_channel_order_is_r_g_b_g():
    cell = np.array([[1, 2], [4, 3]], dtype=np.uint16)  # R G / G2 B  -> R G B G2 = 1 2 3 4
    packed = sid_io.pack_bayer(np.tile(cell, (3, 5)))
    assert packed.shape == (3, 5, 4) and packed.dtype == np.uint16
    assert (packed == np.array([1, 2, 3, 4])).all()


def test_ground_truth_follows_postprocess_linear_formula(tmp_path):
    # With gamma (1, 1) a flat raw comes out as (raw - black) / (white - black) * 65535.
    value = 6000
    path = write_raw(tmp_path / '00001_00_10s.dng', np.full((32, 48), value))
    linear = sid_io.postprocess(path, gamma=(1, 1))
    assert linear.dtype == np.uint16 and linear.shape == (32, 48, 3)
    expected = (value - 512) / (16383.0 - 512) * 65535
    assert np.abs(linear.astype(np.float64) - expected).max() <= 1
    gt = sid_io.read_ground_truth(path)
    assert gt.dtype == np.float32 and gt.shape == (32, 48, 3)
    assert 0 < gt.min() and gt.max() <= 1  # default sRGB gamma brightens mid-grey
    assert gt.mean() > expected / 65535


def test_read_exif_reads_iso_fnumber_and_exposure(tmp_path):
    path = write_raw(tmp_path / '00001_00_0.033s.dng', random_bayer(), iso=1600, fnumber=5.6,
                     exposure=0.033)
    assert sid_io.read_exif(path) == (1600, pytest.approx(5.6), pytest.approx(0.033))


# ---------------------------------------------------------------- bad raw files

def test_corrupt_raw_names_the_file(tmp_path):
    path = tmp_path / '00001_00_0.1s.dng'
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(sid_io.SidError, match='00001_00_0.1s.dng: not a readable raw file'):
        sid_io.pack_raw(str(path))


TRUNCATED = '00001_00_0.1s.dng: raw data is corrupt or truncated'


def test_truncated_raw_names_the_file(tmp_path):
    path = write_raw(tmp_path / '00001_00_0.1s.dng', random_bayer((256, 384)))
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(sid_io.SidError, match=TRUNCATED):
        sid_io.pack_raw(path)
    with pytest.raises(sid_io.SidError, match=TRUNCATED):
        sid_io.read_ground_truth(path)


def test_non_raw_file_names_the_file(tmp_path):
    from PIL import Image
    path = tmp_path / '00001_00_0.1s.png'
    Image.new('RGB', (32, 32)).save(str(path))
    with pytest.raises(sid_io.SidError, match='00001_00_0.1s.png: not a readable raw file'):
        sid_io.read_bayer(str(path))


def test_odd_sized_raw_names_the_file(tmp_path):
    path = write_raw(tmp_path / '00001_00_0.1s.dng', random_bayer((47, 64)))
    with pytest.raises(sid_io.SidError, match=r'00001_00_0.1s.dng: raw size 47x64 is not even'):
        sid_io.pack_raw(path)


def test_missing_raw_names_the_file(tmp_path):
    with pytest.raises(sid_io.SidError, match='00001_00_0.1s.dng: raw file not found'):
        sid_io.pack_raw(str(tmp_path / '00001_00_0.1s.dng'))


# ---------------------------------------------------------------- atomic writes

def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / 'out.txt'
    with pytest.raises(RuntimeError):
        with sid_io.atomic_write(str(target), 'w') as f:
            f.write('half')
            raise RuntimeError('crash')
    assert os.listdir(str(tmp_path)) == []
    with sid_io.atomic_write(str(target), 'w') as f:
        f.write('whole')
    assert target.read_text() == 'whole' and os.listdir(str(tmp_path)) == ['out.txt']


def test_atomic_path_keeps_the_extension_for_format_sniffing_writers(tmp_path):
    with sid_io.atomic_path(str(tmp_path / 'x.png')) as tmp:
        assert tmp.endswith('x.png') and os.path.dirname(tmp) == str(tmp_path)
        open(tmp, 'w').close()
    assert os.listdir(str(tmp_path)) == ['x.png']


def test_atomic_write_respects_the_umask_and_fsyncs_file_and_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, 'fsync', lambda fd: synced.append(os.fstat(fd).st_ino) or
                        real_fsync(fd))
    for umask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        old = os.umask(umask)
        try:
            with sid_io.atomic_write(str(tmp_path / 'r.txt'), 'w') as f:
                f.write('shared')
        finally:
            os.umask(old)
        assert os.stat(str(tmp_path / 'r.txt')).st_mode & 0o777 == mode
        # the data before the rename, then the folder holding the rename
        assert synced == [os.stat(str(tmp_path / 'r.txt')).st_ino, os.stat(str(tmp_path)).st_ino]
        del synced[:]
    with sid_io.atomic_write(str(tmp_path / 'r.txt'), 'w', fsync=False) as f:
        f.write('quick')
    assert synced == []


def test_atomic_write_under_a_file_is_one_line_naming_the_path(tmp_path):
    (tmp_path / 'file').write_text('x')
    target = str(tmp_path / 'file' / 'sub' / 'out.png')
    with pytest.raises(sid_io.SidError) as e:
        with sid_io.atomic_path(target):
            raise AssertionError('not reached')
    assert str(e.value) == '%s: cannot write (Not a directory)' % target
    target = str(tmp_path / 'file' / 'out.png')  # the folder itself is a file
    with pytest.raises(sid_io.SidError, match=r'out\.png: cannot write \(.*file is a file, not a '
                                              r'folder\)$'):
        with sid_io.atomic_write(target):
            pass


@pytest.mark.parametrize('error, reason', [
    (errno.ENOSPC, 'no space left on {folder}'),
    (errno.EACCES, 'Permission denied'),
    (errno.EIO, 'Input/output error'),
])
def test_atomic_write_failing_mid_write_is_one_line_and_leaves_nothing(tmp_path, error, reason):
    target = str(tmp_path / 'out' / 'report.json')
    with pytest.raises(sid_io.SidError) as e:
        with sid_io.atomic_write(target, 'w') as f:
            f.write('half')
            raise OSError(error, os.strerror(error))  # what a full or failing disk raises
    assert str(e.value) == '%s: cannot write (%s)' % (
        target, reason.format(folder=str(tmp_path / 'out')))
    assert os.listdir(str(tmp_path / 'out')) == []


@pytest.mark.parametrize('free, reason', [(4096, 'no space left on {folder}'),
                                          (1 << 30, '73728 requested and 10104 written')])
def test_a_short_write_is_no_space_left_when_the_disk_is_full(tmp_path, monkeypatch, free,
                                                              reason):
    """Issue 16, case 12: numpy's tofile, tifffile's writer, reports a full disk as an OSError
    without errno, '73728 requested and 10104 written'. With room left it is something else (a
    file size limit), and its own words stay."""
    import collections
    import shutil
    usage = collections.namedtuple('usage', 'total used free')
    monkeypatch.setattr(shutil, 'disk_usage', lambda folder: usage(1 << 40, 1 << 40, free))
    target = str(tmp_path / 'x_sid.tif')
    with pytest.raises(sid_io.SidError) as e:
        with sid_io.atomic_path(target):
            raise OSError('73728 requested and 10104 written')
    assert str(e.value) == '%s: cannot write (%s)' % (target, reason.format(folder=tmp_path))
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize('exchange', [True, False])
def test_replace_folder_swaps_a_unit_and_temporaries_are_cleaned_by_owner(tmp_path, monkeypatch,
                                                                          exchange):
    """One step with renameat2 where Linux has it; two renames elsewhere (or when it is refused)."""
    if not exchange:
        monkeypatch.setattr(sid_io, '_exchange', lambda a, b: False)
    target = tmp_path / 'export'
    for version in ('old', 'new'):
        build = sid_io.new_temp_folder(str(tmp_path), 'export')
        assert re.match(r'^\.tmp-[0-9a-f]{8}-export$', os.path.basename(build))
        with open(os.path.join(build, 'a.txt'), 'w') as f:
            f.write(version)
        sid_io.fsync_tree(build)
        old = sid_io.replace_folder(build, str(target))
        assert (target / 'a.txt').read_text() == version
        assert old is None if version == 'old' else open(os.path.join(old, 'a.txt')).read() == 'old'
    (tmp_path / '.tmp-0123abcd-other').write_text('x')
    (tmp_path / '.tmp-elsewhere').write_text('x')
    assert sid_io.remove_temporaries(str(tmp_path), lambda name: name == 'export') == [
        os.path.basename(old)]
    assert sorted(os.listdir(str(tmp_path))) == ['.tmp-0123abcd-other', '.tmp-elsewhere',
                                                 'export']
    assert sid_io.file_digest(str(target / 'a.txt')) == (
        'sha256:11507a0e2f5e69d5dfa40a62a1bd7b6ee57e6bcd85c67c9b8431b36fff21c437')


def test_atomic_write_failing_to_create_or_rename_is_one_line(tmp_path, monkeypatch):
    target = str(tmp_path / 'list.txt')
    real_open = os.open

    def no_permission(path, *args, **kwargs):
        if os.path.dirname(str(path)) == str(tmp_path):
            raise PermissionError(errno.EACCES, 'Permission denied', path)
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, 'open', no_permission)
    with pytest.raises(sid_io.SidError, match=r'list\.txt: cannot write \(Permission denied\)$'):
        sid_io.write_list(['a'], target)
    monkeypatch.setattr(os, 'open', real_open)

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(os, 'replace', disk_full)
    with pytest.raises(sid_io.SidError, match=r'list\.txt: cannot write \(no space left on %s\)$'
                       % re.escape(str(tmp_path))):
        sid_io.write_list(['a'], target)
    assert os.listdir(str(tmp_path)) == []


def test_require_writable_dir_creates_and_proves_or_fails_in_one_line(tmp_path, monkeypatch):
    folder = tmp_path / 'a' / 'b'
    sid_io.require_writable_dir(str(folder), 'checkpoints')
    assert folder.is_dir() and os.listdir(str(folder)) == []
    (tmp_path / 'file').write_text('x')
    with pytest.raises(sid_io.SidError) as e:
        sid_io.require_writable_dir(str(tmp_path / 'file' / 'ckpt'), 'checkpoints')
    assert str(e.value) == '%s: cannot write checkpoints (Not a directory)' % (
        tmp_path / 'file' / 'ckpt')
    with pytest.raises(sid_io.SidError, match=r'file: cannot write results \(.*file is a file, '
                                              r'not a folder\)$'):
        sid_io.require_writable_dir(str(tmp_path / 'file'), 'results')
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # root ignores chmod: simulate EACCES
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, 'Permission denied', path)
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, 'open', read_only)
    with pytest.raises(sid_io.SidError) as e:
        sid_io.require_writable_dir(str(folder), 'the decoded-raw cache')
    assert str(e.value) == '%s: cannot write the decoded-raw cache (Permission denied)' % folder


def test_non_rggb_raw_is_refused_by_the_paper_path(tmp_path):
    path = write_raw(tmp_path / '00001_00_0.1s.dng', random_bayer(), cfa='GRBG')
    with pytest.raises(sid_io.SidError, match=r'00001_00_0.1s.dng: CFA order GRBG, expected RGGB'):
        sid_io.pack_raw(path)


# ---------------------------------------------------------------- any camera (read_mosaic)

# (phase of the red pixel, CFA order from the top-left) for the four Bayer layouts
PHASES = [((0, 0), 'RGGB'), ((0, 1), 'GRBG'), ((1, 0), 'GBRG'), ((1, 1), 'BGGR')]


@pytest.mark.parametrize('phase,cfa', PHASES)
def test_read_mosaic_finds_the_phase_and_each_positions_own_black_level(tmp_path, phase, cfa):
    """LibRaw reports black levels by colour (R, G, B, G2); read_mosaic gives them per packed
    channel R, G, B, G after alignment, i.e. per position: write a different black per position."""
    cell_black = (500, 510, 520, 530)  # positions (0,0), (0,1), (1,0), (1,1)
    bayer = random_bayer((40, 56), seed=3)
    path = write_raw(tmp_path / 'x.dng', bayer, cfa=cfa, black=cell_black, white=4095)
    mosaic = sid_io.read_mosaic(path)
    assert mosaic.phase == phase and mosaic.flip == 0
    np.testing.assert_array_equal(mosaic.counts, bayer)
    dy, dx = phase
    expected = [cell_black[2 * ((y + dy) % 2) + (x + dx) % 2] for y, x in sid_io.BAYER_OFFSETS]
    assert mosaic.black.tolist() == expected and mosaic.white.tolist() == [4095] * 4
    colours = [cfa[2 * ((y + dy) % 2) + (x + dx) % 2] for y, x in sid_io.BAYER_OFFSETS]
    assert colours == list('RGBG')  # the aligned cell is the network's R, G, B, G


@pytest.mark.parametrize('phase', [p for p, _ in PHASES])
@pytest.mark.parametrize('shape', [(6, 8), (7, 9)])
def test_align_bayer_mirrors_same_colour_pixels_to_an_rggb_start(phase, shape):
    dy, dx = phase  # red pixel at (dy, dx): pixel (y, x) has cell position (y + dy, x + dx) mod 2
    colour = np.add.outer((np.arange(shape[0]) + dy) % 2 * 2, (np.arange(shape[1]) + dx) % 2)
    aligned = sid_io.align_bayer(np.asarray(colour, np.uint16), phase)
    assert aligned.shape[0] % 2 == 0 and aligned.shape[1] % 2 == 0
    assert aligned.shape[0] - shape[0] in (0, 1, 2) and aligned.shape[1] - shape[1] in (0, 1, 2)
    np.testing.assert_array_equal(aligned[dy:dy + shape[0], dx:dx + shape[1]], colour)
    np.testing.assert_array_equal(aligned, np.add.outer(np.arange(aligned.shape[0]) % 2 * 2,
                                                        np.arange(aligned.shape[1]) % 2))


@pytest.mark.parametrize('orientation', range(1, 9))
def test_orient_turns_like_libraw(tmp_path, orientation):
    """sid_io.orient(image, flip) against rawpy's own postprocess with and without flipping."""
    path = write_raw(tmp_path / 'x.dng', random_bayer((24, 40)), orientation=orientation)
    mosaic = sid_io.read_mosaic(path)
    turned = sid_io.postprocess(path, half_size=True, user_flip=-1)  # LibRaw's own turning
    flat = sid_io.postprocess(path, half_size=True)  # the sensor's orientation (GT_POSTPROCESS)
    assert (mosaic.flip != 0) == (orientation != 1)
    np.testing.assert_array_equal(sid_io.orient(flat, mosaic.flip), turned)


def unsupported_files(tmp_path):
    """{name: (path, reason)}: one file of every kind that is not an RGB Bayer raw."""
    from PIL import Image
    bayer = random_bayer((32, 48))
    files = {  # X-Trans in another phase than the X-T2's: the 9-channel packing would mix colours
        'xtrans': (write_raw(tmp_path / 'xtrans.dng', bayer[:30, :48],
                             cfa='GGRGGB' 'GGBGGR' 'BRGRBG' 'GGBGGR' 'GGRGGB' 'RBGBRG'),
                   'X-Trans CFA is GGRGGB/GGBGGR/BRGRBG/GGBGGR/GGRGGB/RBGBRG, expected the X-T2 '
                   'phase'),
        'monochrome': (write_raw(tmp_path / 'mono.dng', bayer, cfa=None),
                       'monochrome sensor: no colour filter array'),
        'linear': (write_raw(tmp_path / 'linear.dng', np.stack([bayer] * 3, -1), cfa=None,
                             photometric=make_dataset.PHOTOMETRIC_LINEAR_RAW),
                   'linear DNG: already demosaiced, no CFA'),
        'cmyg': (write_raw(tmp_path / 'cmyg.dng', bayer, cfa='CMYG'),
                 'not an RGB Bayer sensor (CFA pattern 2x2'),
    }
    import tifffile
    tifffile.imwrite(str(tmp_path / 'mono1.dng'), bayer.astype(np.uint16), photometric=1,
                     metadata=None, extratags=[(50706, 1, 4, (1, 4, 0, 0), True)])
    files['monochrome DNG'] = (str(tmp_path / 'mono1.dng'),
                               'monochrome DNG: no colour filter array')
    tifffile.imwrite(str(tmp_path / 'scan.tif'), np.stack([bayer] * 3, -1).astype(np.uint16),
                     photometric='rgb')
    files['scanner'] = (str(tmp_path / 'scan.tif'), 'not a readable raw file: a TIFF image '
                        'without camera raw data')
    Image.new('RGB', (32, 32)).save(str(tmp_path / 'photo.jpg'))
    files['jpeg'] = (str(tmp_path / 'photo.jpg'), 'not a readable raw file: a JPEG image')
    (tmp_path / 'sigma.x3f').write_bytes(sid_io.FOVEON_MAGIC + bytes(4096))
    files['foveon'] = (str(tmp_path / 'sigma.x3f'), 'Foveon X3 sensor')
    data = open(write_raw(tmp_path / 'cut.dng', random_bayer((256, 384))), 'rb').read()
    (tmp_path / 'cut.dng').write_bytes(data[:len(data) // 2])
    files['truncated'] = (str(tmp_path / 'cut.dng'), 'raw data is corrupt or truncated')
    return files


def test_unsupported_raws_are_refused_in_plain_words_on_one_line(tmp_path, capfd):
    files = unsupported_files(tmp_path)
    capfd.readouterr()
    for kind, (path, reason) in sorted(files.items()):
        with pytest.raises(sid_io.SidError) as error:
            sid_io.read_mosaic(path)
        assert str(error.value).startswith('%s: %s' % (path, reason)), kind
        assert '\n' not in str(error.value)
    out, err = capfd.readouterr()
    assert (out, err) == ('', '')  # LibRaw's own "Unexpected end of file" is not printed too


# ---------------------------------------------------------------- one run per output folder

HOLDER = '''
import sys, time
sys.path.insert(0, sys.argv[1])
import sid_io
sid_io.lock_folder(sys.argv[2], '--checkpoint_dir')
print('locked', flush=True)
if sys.argv[3] == 'wait':
    time.sleep(600)
'''


def hold(folder, wait=True):
    """A process holding `folder` (once it printed 'locked'), or its result when not waiting."""
    import subprocess
    import sys
    from conftest import ROOT
    args = [sys.executable, '-c', HOLDER, ROOT, str(folder), 'wait' if wait else 'exit']
    if not wait:
        return subprocess.run(args, stdout=subprocess.PIPE, universal_newlines=True)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, universal_newlines=True)
    assert proc.stdout.readline() == 'locked\n'
    return proc


def test_a_folder_held_by_a_live_run_is_refused_in_one_line_naming_it(tmp_path):
    proc = hold(tmp_path)
    try:
        with pytest.raises(sid_io.SidError) as error:
            sid_io.lock_folder(str(tmp_path), '--checkpoint_dir')
        assert str(error.value) == (
            '%s: in use by -c (pid %d on %s); wait for it to end or give --checkpoint_dir '
            'another folder' % (tmp_path, proc.pid, __import__('socket').gethostname()))
    finally:
        proc.kill()
        proc.wait()
    # kill -9 leaves the file but not the lock: the next run takes it.
    assert os.path.exists(str(tmp_path / sid_io.LOCK_NAME))
    assert hold(tmp_path, wait=False).stdout == 'locked\n'


def test_a_normal_exit_releases_and_removes_the_lock(tmp_path):
    assert hold(tmp_path, wait=False).returncode == 0
    assert os.listdir(str(tmp_path)) == []
    assert hold(tmp_path, wait=False).returncode == 0


_HELD = threading.Lock()


def _parent_lock_is_free(_):
    """In a pool worker: a forked copy of a lock another thread held stays locked forever."""
    return _HELD.acquire(timeout=0.5)


def test_pool_workers_do_not_inherit_a_lock_held_by_another_thread():
    # what deadlocked a forked cache worker: TF's and tqdm's threads were running in the parent
    held, release = threading.Event(), threading.Event()

    def hold():
        with _HELD:
            held.set()
            release.wait()
    holder = threading.Thread(target=hold)
    holder.start()
    try:
        held.wait()
        with sid_io.process_pool(2) as pool:
            assert pool.map(_parent_lock_is_free, range(2)) == [True, True]
    finally:
        release.set()
        holder.join()


def run_wrapped(body):
    """Run `body` as a fail_cleanly-wrapped main in a fresh interpreter: (exit code, stderr)."""
    import subprocess
    import sys
    import textwrap
    code = 'import os, signal, sid_io\n@sid_io.fail_cleanly\ndef main():\n%s\nmain()\n' % (
        textwrap.indent(textwrap.dedent(body), '    '))
    proc = subprocess.run([sys.executable, '-c', code], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True,
                          preexec_fn=ctrl_c_enabled,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return proc.returncode, proc.stderr


def test_a_ctrl_c_that_library_code_swallowed_still_stops_the_run():
    # what a bare `except:` in a library, or a C API clearing the error, does to a Ctrl-C
    assert run_wrapped('''
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException:
            pass
        sid_io.raise_if_interrupted()
        print('never')
    ''') == (sid_io.EXIT_INTERRUPTED, 'error: interrupted (SIGINT)\n')
    assert run_wrapped('sid_io.raise_if_interrupted()') == (0, '')


def test_a_ctrl_c_surfacing_as_a_systemerror_from_c_code_is_one_line_and_exit_130():
    # TF 1.15's SWIG wrappers: "SystemError: <built-in function TF_NewBuffer> returned a result
    # with an error set", caused by the KeyboardInterrupt raised inside the call
    assert run_wrapped('''
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise SystemError('<built-in function TF_NewBuffer> returned a result with an error '
                              'set') from e
    ''') == (sid_io.EXIT_INTERRUPTED, 'error: interrupted (SIGINT)\n')
    code, stderr = run_wrapped('raise SystemError("a real one")')
    assert code == 1 and stderr.splitlines()[-1] == 'SystemError: a real one'
