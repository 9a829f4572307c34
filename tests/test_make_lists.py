"""scripts/make_lists.py: rebuilding lists from the files' EXIF gives the same lists - the
generated ones and the authors' own, byte for byte."""
import os

import pytest

import cli
import make_dataset
import make_lists
from conftest import (OFFICIAL_LISTS, ROOT, make_tiny_dataset, official_lines, run_script,
                      write_raws_for_lines)

SAMPLE_EVERY = 50  # train/test lines sampled (the whole val list is rebuilt)


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
    with pytest.raises(cli.SidError, match='Sony/long: folder not found'):
        make_lists.build_lists(str(tmp_path))
    make_tiny_dataset(tmp_path, n_train=1, n_test=0, n_val=0)
    (tmp_path / 'Sony/short/IMG_0001.dng').write_bytes(b'')
    result = run_script('scripts/make_lists.py', '--data_dir', tmp_path, '--list_dir', tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert 'IMG_0001.dng: file name does not follow the SID scheme' in result.stderr


def test_official_lists_are_rebuilt_byte_for_byte(tmp_path):
    """Raws named as the authors' lines, carrying their ISO / F in EXIF: every line of the val list
    and every 50th of train and test come back exactly, in the same order."""
    train, test, val = (official_lines(name) for name in OFFICIAL_LISTS)
    expected = {'Sony_train_list.txt': train[::SAMPLE_EVERY],
                'Sony_test_list.txt': test[::SAMPLE_EVERY], 'Sony_val_list.txt': val}
    write_raws_for_lines(tmp_path, [l for lines in expected.values() for l in lines])
    result = run_script('scripts/make_lists.py', '--data_dir', tmp_path)  # lists go to data_dir
    assert result.returncode == 0, result.stderr
    for name, lines in expected.items():
        assert (tmp_path / name).read_bytes() == ''.join(l + '\n' for l in lines).encode()
    with open(os.path.join(ROOT, 'Sony_val_list.txt'), 'rb') as f:
        assert (tmp_path / 'Sony_val_list.txt').read_bytes() == f.read()
    assert len(val) == 234 and len(expected['Sony_train_list.txt']) > 30


def test_the_official_lists_are_never_overwritten(tmp_path):
    before = [official_lines(name) for name in OFFICIAL_LISTS]
    make_tiny_dataset(tmp_path, n_train=1, n_test=0, n_val=0)
    result = run_script('scripts/make_lists.py', '--data_dir', tmp_path, '--list_dir', ROOT)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: %s: the project root holds the authors' official list files; write the lists of "
        "this dataset elsewhere (default: its data_dir)" % ROOT]
    assert [official_lines(name) for name in OFFICIAL_LISTS] == before
