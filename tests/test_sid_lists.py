"""sid_lists: SID file names, exposure ratios and list files (a bad line is one line naming the
list and line)."""
import os
import re

import numpy as np
import pytest

import cli
import make_dataset
import raw_io
import sid_lists
from conftest import ROOT


def write_raw(path, bayer, iso=200, fnumber=8.0, exposure=0.1, **camera):
    make_dataset.write_dng(str(path), np.asarray(bayer, dtype=np.uint16), iso, fnumber, exposure,
                           **camera)
    return str(path)


def random_bayer(shape=(48, 64), seed=0):
    # Include values below the black level and at the white level: both clip in pack_raw.
    return np.random.default_rng(seed).integers(0, raw_io.WHITE_LEVEL + 1, size=shape)


# ---------------------------------------------------------------- names and ratios

def test_parse_name_reads_scene_burst_and_exposure():
    assert sid_lists.parse_name('/x/Sony/short/10019_00_0.033s.ARW') == (10019, 0, 0.033)
    assert sid_lists.parse_name('00001_07_10s.dng') == (1, 7, 10.0)


@pytest.mark.parametrize('name', ['10019_00_0.033.ARW', '1001_00_0.1s.ARW', 'scene.dng',
                                  '10019_00_s.ARW', '10019_00_0s.ARW'])
def test_parse_name_rejects_names_without_exposure(name):
    with pytest.raises(cli.SidError, match=name.replace('.', r'\.')):
        sid_lists.parse_name(name)


def test_exposure_ratio_gives_the_three_sony_ratios_capped_at_300():
    long_ = '00001_00_10s.ARW'
    shorts = ['00001_00_%ss.ARW' % t for t in ('0.1', '0.04', '0.033')]
    ratios = [sid_lists.exposure_ratio(short, long_) for short in shorts]
    assert ratios == pytest.approx([100, 250, 300])
    # 303 -> 300
    assert sid_lists.exposure_ratio('00001_00_0.033s.ARW', long_) == sid_lists.MAX_RATIO


# ---------------------------------------------------------------- list files

def test_read_list_resolves_paths_and_keeps_line_numbers(tiny_dataset):
    pairs = sid_lists.read_list(str(tiny_dataset / 'Sony_train_list.txt'), str(tiny_dataset))
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
    with pytest.raises(cli.SidError, match=r'l\.txt:2: expected 4 fields'):
        sid_lists.read_list(bad, str(tiny_dataset))


def test_read_list_missing_file_names_line_and_path(tiny_dataset, tmp_path):
    bad = write_text(tmp_path / 'l.txt',
                     './Sony/short/00009_00_0.1s.dng ./Sony/long/00009_00_10s.dng ISO100 F8\n')
    with pytest.raises(cli.SidError, match=r'l\.txt:1: file not found: .*00009_00_0\.1s\.dng'):
        sid_lists.read_list(bad, str(tiny_dataset))


def test_the_authors_list_next_to_a_generated_set_names_the_generated_list(tiny_dataset):
    """After the demo, plain `python3 test_Sony.py` reads the authors' list in the project root
    against the generated set in ./dataset: the error says which list to pass."""
    official = os.path.join(ROOT, 'Sony_test_list.txt')
    with pytest.raises(cli.SidError) as e:
        sid_lists.read_list(official, str(tiny_dataset))
    own = os.path.join(str(tiny_dataset), 'Sony_test_list.txt')
    assert str(e.value).startswith('%s:1: file not found: ' % official)
    assert str(e.value).endswith(' (%s lists the files in %s: pass it as the list)'
                                 % (own, tiny_dataset))


def test_read_list_bad_exposure_name_and_bad_iso(tiny_dataset, tmp_path):
    bad = write_text(tmp_path / 'l.txt', './Sony/short/00001_00.dng ./Sony/long/00001_00_10s.dng '
                                         'ISO100 F8\n')
    with pytest.raises(cli.SidError, match=r'l\.txt:1: .*00001_00\.dng: file name does not'):
        sid_lists.read_list(bad, str(tiny_dataset), check_files=False)
    bad = write_text(tmp_path / 'm.txt', './Sony/short/00001_00_0.1s.dng '
                                         './Sony/long/00001_00_10s.dng 100 F8\n')
    with pytest.raises(cli.SidError, match=r'm\.txt:1: ISO and F fields'):
        sid_lists.read_list(bad, str(tiny_dataset), check_files=False)


def test_read_list_unreadable_list_names_it(tmp_path):
    with pytest.raises(cli.SidError, match='nope.txt: cannot read list file'):
        sid_lists.read_list(str(tmp_path / 'nope.txt'), str(tmp_path))


def test_list_line_round_trips_through_the_parser(tmp_path):
    line = sid_lists.format_list_line('./Sony/short/00001_00_0.04s.ARW',
                                      './Sony/long/00001_00_10s.ARW', 200, 5.6)
    assert line == './Sony/short/00001_00_0.04s.ARW ./Sony/long/00001_00_10s.ARW ISO200 F5.6'
    sid_lists.write_list([line], str(tmp_path / 'l.txt'))
    pair, = sid_lists.read_list(str(tmp_path / 'l.txt'), str(tmp_path), check_files=False)
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
    with pytest.raises(cli.SidError, match=r'^%s:2: %s' % (re.escape(bad), message)):
        sid_lists.read_list(bad, str(tmp_path), check_files=False)


def test_read_list_rejects_a_short_exposure_listed_twice(tmp_path):
    bad = write_text(tmp_path / 'l.txt', '\n'.join([
        LINE, LINE.replace('_00_0.1s', '_01_0.1s'), LINE.replace('10s', '30s')]))
    with pytest.raises(cli.SidError, match=r'l\.txt:3: short exposure .*00001_00_0\.1s\.dng '
                       r'is already paired on line 1$'):
        sid_lists.read_list(bad, str(tmp_path), check_files=False)


def test_official_lists_pass_the_pair_checks(tmp_path):
    """The authors' list lines are sane pairs; e.g. Sony_test_list.txt's first and last lines."""
    lines = ['./Sony/short/10003_00_0.04s.ARW ./Sony/long/10003_00_10s.ARW ISO200 F9',
             './Sony/short/10003_00_0.1s.ARW ./Sony/long/10003_00_10s.ARW ISO200 F9',
             './Sony/short/10227_09_0.1s.ARW ./Sony/long/10227_00_30s.ARW ISO400 F4']
    path = write_text(tmp_path / 'l.txt', '\n'.join(lines) + '\n')
    assert len(sid_lists.read_list(path, str(tmp_path), check_files=False)) == 3


def test_read_list_not_utf8_names_file_and_line(tmp_path):
    bad = tmp_path / 'l.txt'
    bad.write_bytes(LINE.encode() + b'\n./Sony/short/00001_01_0.1s.dng caf\xe9 ISO100 F8\n')
    with pytest.raises(cli.SidError) as e:
        sid_lists.read_list(str(bad), str(tmp_path), check_files=False)
    assert str(e.value) == '%s:2: not a UTF-8 text list file (byte 0xe9)' % bad


def test_read_list_given_a_raw_file_names_it(tiny_dataset):
    raw = str(tiny_dataset / 'Sony/long/00001_00_10s.dng')
    with pytest.raises(cli.SidError) as e:
        sid_lists.read_list(raw, str(tiny_dataset))
    assert re.match(r'^%s:\d+: not a (UTF-8 )?text list file \((byte 0x[0-9a-f]{2}|NUL byte)\)$'
                    % re.escape(raw), str(e.value)), str(e.value)


def test_read_list_strips_a_utf8_bom(tmp_path):
    path = tmp_path / 'l.txt'
    path.write_bytes(b'\xef\xbb\xbf' + LINE.encode() + b'\n')
    pair, = sid_lists.read_list(str(path), str(tmp_path), check_files=False)
    assert pair.short == os.path.normpath(str(tmp_path / 'Sony/short/00001_00_0.1s.dng'))
    bad = tmp_path / 'm.txt'  # the line of a bad byte counts lines after the BOM, too
    bad.write_bytes(b'\xef\xbb\xbf' + LINE.encode() + b'\n\xe9\n')
    with pytest.raises(cli.SidError, match=r'm\.txt:2: not a UTF-8 text list file'):
        sid_lists.read_list(str(bad), str(tmp_path), check_files=False)
