"""raw_cache, the decoded-raw cache: exact content, atomic entries, rebuilt when the raw changes,
and never trusted blindly: a damaged entry is rebuilt with one line saying why, never used."""
import glob
import os
import shutil

import numpy as np
import pytest

import cli
import make_dataset
import raw_cache
import raw_io
import sid_lists


@pytest.fixture
def pair(tiny_dataset):
    return sid_lists.read_list(os.path.join(str(tiny_dataset), 'Sony_train_list.txt'),
                               str(tiny_dataset))[0]


@pytest.fixture
def own_raw(pair, tmp_path):
    """A copy of a short exposure in a dataset of the test's own (data_dir, raw path)."""
    data = tmp_path / 'data'
    os.makedirs(str(data / 'Sony' / 'short'))
    raw = str(data / 'Sony' / 'short' / os.path.basename(pair.short))
    shutil.copyfile(pair.short, raw)
    return str(data), raw


@pytest.fixture
def fresh_process(monkeypatch):
    """As if in a new process: no entry verified yet."""
    monkeypatch.setattr(raw_cache, '_verified', set())


def test_entries_hold_exactly_what_the_decoder_gives(tiny_dataset, pair, tmp_path):
    entries = raw_cache.build_cache([(pair.short, 'input'), (pair[1], 'gt')], str(tmp_path),
                                    str(tiny_dataset), workers=1, progress=False)
    packed = raw_cache.open_cached(entries[(pair.short, 'input')])
    rgb = raw_cache.open_cached(entries[(pair[1], 'gt')])
    assert isinstance(packed, np.memmap) and packed.dtype == np.uint16
    np.testing.assert_array_equal(raw_io.normalize(packed), raw_io.pack_raw(pair.short))
    np.testing.assert_array_equal(raw_io.gt_to_float(rgb), raw_io.read_ground_truth(pair[1]))
    # mirrored under the cache root, keyed by the raw's size, mtime, inode and ctime
    path = entries[(pair.short, 'input')]
    rel = os.path.relpath(path, str(tmp_path))
    assert rel.startswith(os.path.join('Sony', 'short', os.path.basename(pair.short) + '.input.v'))
    st = os.stat(pair.short)
    assert path.endswith('.v%d-%d-%d-%d-%d.npy' % (raw_cache.CACHE_VERSION, st.st_size,
                                                   st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
    # Still a .npy for numpy (the checksum trailer follows the array).
    np.testing.assert_array_equal(np.load(path), packed)
    assert raw_cache.cache_entry_problem(path, 'input') is None


def test_changed_raw_gets_a_new_entry_and_the_stale_one_goes(own_raw, tmp_path):
    data, raw = own_raw
    cache = str(tmp_path / 'cache')
    first, rebuilt = raw_cache.build_cache_entry(raw, 'input', cache, data)
    assert rebuilt is None
    assert raw_cache.build_cache_entry(raw, 'input', cache, data) == (first, None)  # reused
    before = np.array(raw_cache.open_cached(first))
    bayer = np.full((before.shape[0] * 2, before.shape[1] * 2), 1000, np.uint16)
    make_dataset.write_dng(raw, bayer, 100, 8.0, 0.1)
    os.utime(raw, ns=(1, 1))  # a different mtime even on coarse clocks
    second, _ = raw_cache.build_cache_entry(raw, 'input', cache, data)
    assert second != first and not os.path.exists(first)
    assert (np.asarray(raw_cache.open_cached(second)) == 1000).all()
    assert not glob.glob(os.path.join(cache, '**', '.tmp-*'), recursive=True)


@pytest.mark.parametrize('how', ['in place', 'replaced'])
def test_raw_swapped_for_same_size_raw_with_mtime_restored_is_decoded_again(own_raw, tmp_path,
                                                                            how):
    """`cp other raw; touch -r saved raw` keeps size and mtime: the inode or ctime still moves."""
    data, raw = own_raw
    cache = str(tmp_path / 'cache')
    first, _ = raw_cache.build_cache_entry(raw, 'input', cache, data)
    shape = raw_cache.open_cached(first).shape
    st = os.stat(raw)
    other = str(tmp_path / 'other.dng')
    make_dataset.write_dng(other, np.full((shape[0] * 2, shape[1] * 2), 1000, np.uint16), 200, 8.0,
                           0.04)
    assert os.path.getsize(other) == st.st_size  # a different raw of the same size
    if how == 'in place':  # cp: same inode, new content
        shutil.copyfile(other, raw)
    else:  # mv, rsync: a new inode
        os.replace(other, raw)
    os.utime(raw, ns=(st.st_atime_ns, st.st_mtime_ns))  # touch -r
    now = os.stat(raw)
    assert (now.st_size, now.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert (now.st_ino, now.st_ctime_ns) != (st.st_ino, st.st_ctime_ns)
    second, _ = raw_cache.build_cache_entry(raw, 'input', cache, data)
    assert second != first and not os.path.exists(first)
    assert (np.asarray(raw_cache.open_cached(second)) == 1000).all()


def corrupt(path, how):
    """Damage a cache entry the ways disks, copies and people do."""
    with open(path, 'rb') as f:
        content = f.read()
    if how == 'empty':
        content = b''
    elif how == 'garbage':
        content = b'garbage'
    elif how == 'fortran order':
        content = content.replace(b"'fortran_order': False", b"'fortran_order': True ", 1)
    elif how == 'dtype':
        content = content.replace(b"'<u2'", b"'<i2'", 1)
    elif how == 'shape':  # the same number of values as 2 channels; header length kept
        end = content.index(b'\n') + 1
        shape = content[content.index(b'(') + 1:content.index(b')')]
        h, w, c = (int(v) for v in shape.split(b','))
        header = content[:end].replace(shape, b'%d, %d, 2' % (h, w * c // 2), 1).rstrip(b' \n')
        content = header + b' ' * (end - 1 - len(header)) + b'\n' + content[end:]
    elif how == 'truncated':
        content = content[:len(content) // 2]
    elif how == 'appended':
        content += b'\0' * 64
    elif how == 'no trailer':  # a numpy .npy without the checksum (the v1 format)
        content = content[:-raw_cache.CACHE_TRAILER.size]
    elif how == 'overwritten data':  # 64 bytes inside the data: only the checksum sees it
        middle = len(content) // 2
        content = content[:middle] + bytes(64) + content[middle + 64:]
    with open(path, 'wb') as f:
        f.write(content)


DAMAGES = ['empty', 'garbage', 'fortran order', 'dtype', 'shape', 'truncated', 'appended',
           'no trailer', 'overwritten data']


@pytest.mark.parametrize('how', DAMAGES)
def test_damaged_entry_is_rebuilt_with_one_line_never_used(tiny_dataset, pair, tmp_path, how,
                                                           capsys, fresh_process):
    cache = str(tmp_path / 'cache')
    job = [(pair.short, 'input')]
    path = raw_cache.build_cache(job, cache, str(tiny_dataset), workers=1, progress=False)[job[0]]
    good = np.array(raw_cache.open_cached(path))
    corrupt(path, how)
    raw_cache._verified.clear()  # a new process: its first open verifies
    problem = raw_cache.cache_entry_problem(path, 'input')
    assert problem and '\n' not in problem
    with pytest.raises(cli.SidError) as e:
        raw_cache.open_cached(path)
    assert path in str(e.value) and '\n' not in str(e.value)
    capsys.readouterr()
    entries = raw_cache.build_cache(job, cache, str(tiny_dataset), workers=1, progress=False)
    assert entries[job[0]] == path
    np.testing.assert_array_equal(raw_cache.open_cached(path), good)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['cache entry %s: %s; rebuilt it' % (path, problem)]


def test_header_checks_run_without_verification_but_data_checks_need_it(tiny_dataset, pair,
                                                                        tmp_path, fresh_process):
    cache = str(tmp_path / 'cache')
    jobs = [(pair.short, 'input'), (pair[1], 'gt')]
    entries = raw_cache.build_cache(jobs, cache, str(tiny_dataset), workers=1, progress=False)
    short, long_ = entries[jobs[0]], entries[jobs[1]]
    corrupt(short, 'fortran order')
    corrupt(long_, 'overwritten data')
    damaged_long = open(long_, 'rb').read()
    raw_cache._verified.clear()
    raw_cache.build_cache(jobs, cache, str(tiny_dataset), workers=1, progress=False, verify=False)
    assert raw_cache.cache_entry_problem(short, 'input') is None  # rebuilt from the header alone
    assert open(long_, 'rb').read() == damaged_long  # not read without verification ...
    with pytest.raises(cli.SidError, match='checksum'):
        raw_cache.open_cached(long_)  # ... but its first open in this process checks it
    raw_cache.build_cache(jobs, cache, str(tiny_dataset), workers=2, progress=False)  # pool
    assert raw_cache.cache_entry_problem(long_, 'gt') is None
    assert set(raw_cache._verified) == {short, long_}  # the workers' checks count for this process


def test_stale_format_entries_are_replaced_and_removed(own_raw, tmp_path):
    data, raw = own_raw
    cache = str(tmp_path / 'cache')
    path, _ = raw_cache.build_cache_entry(raw, 'input', cache, data)
    old = path.replace('.v%d-' % raw_cache.CACHE_VERSION, '.v1-')
    os.rename(path, old)
    assert raw_cache.build_cache_entry(raw, 'input', cache, data) == (path, None)
    assert not os.path.exists(old)


def test_broken_entry_name_and_unreadable_raw_name_themselves(tiny_dataset, pair, tmp_path):
    with pytest.raises(cli.SidError, match='not a cache entry name'):
        raw_cache.open_cached(str(tmp_path / 'x.npy'))
    cache = str(tmp_path / 'cache')
    bad = tmp_path / 'Sony' / 'short' / '00009_00_0.1s.dng'
    os.makedirs(str(bad.parent))
    bad.write_bytes(b'not a raw' * 50)
    with pytest.raises(cli.SidError) as e:
        raw_cache.build_cache([(str(bad), 'input'), (pair.short, 'input')], cache, str(tmp_path),
                              workers=2, progress=False)  # through the process pool
    assert str(bad) in str(e.value) and '\n' not in str(e.value)


def test_entries_are_written_durably_with_the_umask_mode(own_raw, tmp_path, monkeypatch):
    data, raw = own_raw
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, 'fsync', lambda fd: synced.append(os.fstat(fd).st_ino) or
                        real_fsync(fd))
    old = os.umask(0o027)
    try:
        path, _ = raw_cache.build_cache_entry(raw, 'input', str(tmp_path / 'cache'), data)
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert os.stat(path).st_ino in synced and os.stat(os.path.dirname(path)).st_ino in synced


def test_bayer_kinds_hold_the_red_cut_and_the_files_levels_apart_from_the_sony_kinds(
        tiny_bayer_dataset, tiny_dataset, tmp_path):
    """--camera=bayer's entries: packed counts after the cut to the red pixel, the identically cut
    ground truth, the levels per packed channel; never the Sony kinds' names or contents."""
    assert raw_cache.CACHE_KINDS == {
        'input': ('bayer', 0), 'gt': ('bayer', 1),  # the Sony kinds, unchanged
        'bayer_any_input': ('bayer_any', 0), 'bayer_any_gt': ('bayer_any', 1),
        'bayer_any_levels': ('bayer_any', 2),
        'xtrans_input': ('xtrans', 0), 'xtrans_gt': ('xtrans', 1)}
    pair = sid_lists.read_list(str(tiny_bayer_dataset / 'Bayer_train_list.txt'),
                               str(tiny_bayer_dataset))[0]
    jobs = [(pair.short, 'bayer_any_input'), (pair.short, 'bayer_any_levels'),
            (pair.long, 'bayer_any_gt')]
    entries = raw_cache.build_cache(jobs, str(tmp_path), str(tiny_bayer_dataset), workers=1,
                                    progress=False)
    mosaic = raw_io.read_mosaic(pair.short)
    assert mosaic.phase == (0, 1)  # GRBG: the first and last columns go
    packed = raw_cache.open_cached(entries[jobs[0]])
    np.testing.assert_array_equal(packed, raw_io.pack_bayer(mosaic.counts[:, 1:-1]))
    levels = raw_cache.read_levels_entry(entries[jobs[1]])
    assert levels.black.tolist() == [601, 600, 602, 603] and levels.white.tolist() == [4095] * 4
    assert raw_cache.open_cached(entries[jobs[1]]).shape == (2, 1, 4)
    rgb = raw_cache.open_cached(entries[jobs[2]])
    np.testing.assert_array_equal(rgb, raw_io.postprocess(pair.long, 'bayer_any',
                                                          user_flip=0)[:, 1:-1])
    assert rgb.shape == (2 * packed.shape[0], 2 * packed.shape[1], 3)
    for (raw, kind), path in entries.items():
        assert os.path.basename(path).startswith(os.path.basename(raw) + '.%s.v' % kind)
    # A levels entry of the wrong shape is refused; the RGGB-only kinds refuse a GRBG raw.
    bad = str(tmp_path / 'x.dng.bayer_any_levels.v2-1-1-1-1.npy')
    raw_cache.write_cache_entry(bad, np.zeros((3, 1, 4), np.uint16))
    assert raw_cache.cache_entry_problem(bad, 'bayer_any_levels') == (
        'shape (3, 1, 4), expected (2, 1, 4)')
    with pytest.raises(cli.SidError, match='CFA order GRBG, expected RGGB'):
        raw_cache.decode_for_cache(pair.short, 'input')
    # The Sony set's RGGB raws in the Sony kinds: exactly the paper's pack_raw counts, as before.
    sony = sid_lists.read_list(str(tiny_dataset / 'Sony_train_list.txt'), str(tiny_dataset))[0]
    np.testing.assert_array_equal(raw_cache.decode_for_cache(sony.short, 'input'),
                                  raw_cache.decode_for_cache(sony.short, 'bayer_any_input'))


def test_bayer_kinds_refuse_an_x_trans_raw_in_one_line(tiny_fuji_dataset, tmp_path):
    raw = sid_lists.read_list(str(tiny_fuji_dataset / 'Fuji_train_list.txt'),
                              str(tiny_fuji_dataset))[0].short
    for kind in ('bayer_any_input', 'bayer_any_gt', 'bayer_any_levels'):
        with pytest.raises(cli.SidError) as e:
            raw_cache.decode_for_cache(raw, kind)
        assert str(e.value).startswith(raw + ': X-Trans sensor') and '\n' not in str(e.value)
