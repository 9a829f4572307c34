"""sid_io's decoded-raw cache: exact content, atomic entries, rebuilt when the raw changes."""
import glob
import os

import numpy as np
import pytest

import sid_io


@pytest.fixture
def pair(tiny_dataset):
    return sid_io.read_list(os.path.join(str(tiny_dataset), 'Sony_train_list.txt'),
                            str(tiny_dataset))[0]


def test_entries_hold_exactly_what_the_decoder_gives(tiny_dataset, pair, tmp_path):
    entries = sid_io.build_cache([(pair.short, 'input'), (pair[1], 'gt')], str(tmp_path),
                                 str(tiny_dataset), workers=1, progress=False)
    packed = sid_io.open_cached(entries[(pair.short, 'input')])
    rgb = sid_io.open_cached(entries[(pair[1], 'gt')])
    assert isinstance(packed, np.memmap) and packed.dtype == np.uint16
    np.testing.assert_array_equal(sid_io.normalize(packed), sid_io.pack_raw(pair.short))
    np.testing.assert_array_equal(sid_io.gt_to_float(rgb), sid_io.read_ground_truth(pair[1]))
    # mirrored under the cache root, keyed by the raw's stamp
    rel = os.path.relpath(entries[(pair.short, 'input')], str(tmp_path))
    assert rel.startswith(os.path.join('Sony', 'short', os.path.basename(pair.short) + '.input.v'))


def test_changed_raw_gets_a_new_entry_and_the_stale_one_goes(tiny_dataset, pair, tmp_path):
    data = tmp_path / 'data'
    os.makedirs(str(data / 'Sony' / 'short'))
    raw = str(data / 'Sony' / 'short' / os.path.basename(pair.short))
    with open(pair.short, 'rb') as src, open(raw, 'wb') as dst:
        dst.write(src.read())
    cache = str(tmp_path / 'cache')
    first = sid_io.build_cache_entry(raw, 'input', cache, str(data))
    assert sid_io.build_cache_entry(raw, 'input', cache, str(data)) == first  # reused
    before = np.array(sid_io.open_cached(first))
    import make_dataset
    bayer = np.full((before.shape[0] * 2, before.shape[1] * 2), 1000, np.uint16)
    make_dataset.write_dng(raw, bayer, 100, 8.0, 0.1)
    os.utime(raw, ns=(1, 1))  # a different mtime even on coarse clocks
    second = sid_io.build_cache_entry(raw, 'input', cache, str(data))
    assert second != first and not os.path.exists(first)
    assert (np.asarray(sid_io.open_cached(second)) == 1000).all()
    assert not glob.glob(os.path.join(cache, '**', '.tmp-*'), recursive=True)


def test_broken_entry_is_rebuilt_and_unreadable_raw_names_itself(tiny_dataset, pair, tmp_path):
    cache = str(tmp_path / 'cache')
    path = sid_io.build_cache_entry(pair.short, 'input', cache, str(tiny_dataset))
    with open(path, 'wb') as f:
        f.write(b'garbage')
    with pytest.raises(sid_io.SidError) as e:
        sid_io.open_cached(path)
    assert path in str(e.value)
    entries = sid_io.build_cache([(pair.short, 'input')], cache, str(tiny_dataset), workers=1,
                                 progress=False)
    assert sid_io.open_cached(entries[(pair.short, 'input')]).shape[-1] == 4
    bad = tmp_path / 'Sony' / 'short' / '00009_00_0.1s.dng'
    os.makedirs(str(bad.parent))
    bad.write_bytes(b'not a raw' * 50)
    with pytest.raises(sid_io.SidError) as e:
        sid_io.build_cache([(str(bad), 'input'), (pair.short, 'input')], cache, str(tmp_path),
                           workers=2, progress=False)  # through the process pool
    assert str(bad) in str(e.value) and '\n' not in str(e.value)
