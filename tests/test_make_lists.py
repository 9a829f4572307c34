"""scripts/make_lists.py: regenerating the lists from the files' EXIF gives the same lists."""
import os

import pytest

import make_dataset
import make_lists
import sid_io
from conftest import make_tiny_dataset, run_script


def test_regenerated_lists_are_identical_to_the_generated_ones(tiny_dataset, tmp_path):
    result = run_script('scripts/make_lists.py', '--data_dir', tiny_dataset, '--list_dir', tmp_path)
    assert result.returncode == 0, result.stderr
    for name in make_dataset.LIST_NAMES.values():
        assert (tmp_path / name).read_text() == (tiny_dataset / name).read_text()
        assert (tmp_path / name).read_text()  # not trivially equal: both have pairs


def test_shorts_without_a_long_exposure_are_left_out(tmp_path):
    make_tiny_dataset(tmp_path, n_train=2, n_test=1, n_val=0)
    os.remove(str(tmp_path / 'Sony/long/00002_00_10s.dng'))
    lines = make_lists.build_lists(str(tmp_path))
    assert [l.split()[0] for l in lines['train']] == ['./Sony/short/00001_00_0.04s.dng',
                                                      './Sony/short/00001_01_0.04s.dng']
    assert len(lines['test']) == 2 and lines['val'] == []


def test_missing_layout_and_unparsable_names_are_one_line_errors(tmp_path):
    with pytest.raises(sid_io.SidError, match='Sony/long: folder not found'):
        make_lists.build_lists(str(tmp_path))
    make_tiny_dataset(tmp_path, n_train=1, n_test=0, n_val=0)
    (tmp_path / 'Sony/short/IMG_0001.dng').write_bytes(b'')
    result = run_script('scripts/make_lists.py', '--data_dir', tmp_path, '--list_dir', tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert 'IMG_0001.dng: file name does not follow the SID scheme' in result.stderr
