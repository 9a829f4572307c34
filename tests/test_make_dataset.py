"""scripts/make_dataset.py: SID layout, determinism, physics of the short exposures, list files."""
import filecmp
import os

import numpy as np
import pytest

import make_dataset
import sid_io
from conftest import make_tiny_dataset, run_script


def all_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), str(root))
                  for d, _, fs in os.walk(str(root)) for f in fs)


def test_layout_names_and_splits(tiny_dataset):
    shorts = sorted(os.listdir(str(tiny_dataset / 'Sony' / 'short')))
    longs = sorted(os.listdir(str(tiny_dataset / 'Sony' / 'long')))
    assert longs == ['00001_00_10s.dng', '00002_00_10s.dng', '00003_00_10s.dng',
                     '10001_00_10s.dng', '10002_00_10s.dng', '20001_00_10s.dng']
    assert len(shorts) == 2 * len(longs)  # two burst frames per scene
    ratios = {sid_io.exposure_ratio(s, '00001_00_10s.dng') for s in shorts}
    assert ratios == {100, 250, 300}
    for split, name in make_dataset.LIST_NAMES.items():
        pairs = sid_io.read_list(str(tiny_dataset / name), str(tiny_dataset))
        assert {sid_io.parse_name(p.short)[0] // 10000 for p in pairs} == {sid_io.SPLITS[split]}


def test_same_seed_gives_identical_files_and_other_seeds_differ(tmp_path):
    make_tiny_dataset(tmp_path / 'a', n_train=2, n_test=1, n_val=0)
    make_tiny_dataset(tmp_path / 'b', n_train=2, n_test=1, n_val=0)
    make_tiny_dataset(tmp_path / 'c', n_train=2, n_test=1, n_val=0, seed=1)
    files = all_files(tmp_path / 'a')
    assert files == all_files(tmp_path / 'b') and len(files) == 3 + 3 * 3
    match, mismatch, errors = filecmp.cmpfiles(str(tmp_path / 'a'), str(tmp_path / 'b'), files,
                                               shallow=False)
    assert (len(match), mismatch, errors) == (len(files), [], [])
    raw = 'Sony/short/00001_00_0.04s.dng'
    assert not filecmp.cmp(str(tmp_path / 'a' / raw), str(tmp_path / 'c' / raw), shallow=False)


def test_raws_decode_like_sony_files_with_structure_and_noise(tiny_dataset):
    long_path = str(tiny_dataset / 'Sony/long/00001_00_10s.dng')
    mosaic = sid_io.read_mosaic(long_path)  # the levels the file itself declares
    assert mosaic.bayer.shape == (96, 136) and mosaic.phase == (0, 0) and mosaic.flip == 0
    assert mosaic.black.tolist() == [512] * 4 and mosaic.white.tolist() == [16383] * 4
    long_ = sid_io.pack_raw(long_path)
    assert long_.std() > 0.1  # edges, gradients and textures, not a flat field
    short_path = str(tiny_dataset / 'Sony/short/00001_00_0.04s.dng')
    short = sid_io.pack_raw(short_path)
    ratio = sid_io.exposure_ratio(short_path, long_path)
    # Dark by the exposure ratio on average, but noisy: amplifying does not give the long back.
    assert short.mean() * ratio == pytest.approx(long_.mean(), rel=0.05)
    residual = short * ratio - long_
    assert residual.std() > 0.05
    other_burst = sid_io.pack_raw(str(tiny_dataset / 'Sony/short/00001_01_0.04s.dng'))
    assert not np.array_equal(short, other_burst)  # independent noise per burst frame


def test_exif_carries_iso_fnumber_and_exposure(tiny_dataset):
    iso, fnumber, exposure = sid_io.read_exif(str(tiny_dataset / 'Sony/short/10001_00_0.033s.dng'))
    assert iso in make_dataset.ISO_CHOICES and fnumber in make_dataset.F_CHOICES
    assert exposure == pytest.approx(0.033)
    line = (tiny_dataset / 'Sony_test_list.txt').read_text().splitlines()[0]
    assert line == './Sony/short/10001_00_0.033s.dng ./Sony/long/10001_00_10s.dng ISO%d F%g' % (
        iso, fnumber)


def test_full_size_is_a_flag_and_bad_sizes_fail_in_one_line(tmp_path):
    result = run_script('scripts/make_dataset.py', '--data_dir', tmp_path, '--list_dir', tmp_path,
                        '--height', 95, '--width', 136)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        'error: --height/--width must be even and >= 22 (LibRaw minimum), got 95x136']
    assert not os.path.exists(str(tmp_path / 'Sony'))
