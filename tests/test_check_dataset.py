"""scripts/check_dataset.py: each kind of bad input is one line naming the file, exit 1; a partial
download of the official lists is one summary line per list."""
import os
import shutil

import numpy as np
import pytest

import make_dataset
from conftest import (OFFICIAL_LISTS, ROOT, make_tiny_dataset, official_lines, run_script,
                      write_raws_for_lines)

LIST = 'Sony_train_list.txt'
SHORT = 'Sony/short/00001_00_0.04s.dng'


@pytest.fixture
def dataset(tmp_path):
    make_tiny_dataset(tmp_path, n_train=1, n_test=0, n_val=0, bursts=1)
    return tmp_path


def check(dataset, lists=None):
    """(exit code, error lines, stdout); lists default to the dataset's own, () to none given."""
    result = run_script('scripts/check_dataset.py', '--data_dir', dataset,
                        *([dataset / LIST] if lists is None else lists))
    # stderr also carries the progress bar (and LibRaw's own warnings); errors start with error:
    errors = [l for l in result.stderr.splitlines() if l.startswith('error:')]
    return result.returncode, errors, result.stdout


def test_clean_dataset_passes(dataset):
    code, errors, out = check(dataset)
    assert (code, errors) == (0, []) and '2 raw files' in out
    assert out.splitlines()[0] == '%s: 1 of 1 pairs present' % (dataset / LIST)


def test_corrupt_raw(dataset):
    (dataset / SHORT).write_bytes(np.random.default_rng(0).bytes(20000))
    code, errors, _ = check(dataset)
    assert code == 1 and len(errors) == 1
    assert errors[0].startswith('error: %s: not a readable raw file' % (dataset / SHORT))


def test_truncated_raw(dataset):
    data = (dataset / SHORT).read_bytes()
    (dataset / SHORT).write_bytes(data[:len(data) // 2])
    code, errors, _ = check(dataset)
    assert code == 1
    assert errors == [
        'error: %s: raw data is corrupt or truncated (LibRawIOError)' % (dataset / SHORT)]


def test_non_raw_file(dataset):
    shutil.copy(make_dataset.__file__, str(dataset / SHORT))
    code, errors, _ = check(dataset)
    assert code == 1 and errors == ['error: %s: not a readable raw file '
                                    '(LibRawFileUnsupportedError)' % (dataset / SHORT)]


def test_list_line_with_a_missing_field(dataset):
    line = (dataset / LIST).read_text().split()
    (dataset / LIST).write_text(' '.join(line[:3]) + '\n')
    code, errors, _ = check(dataset)
    assert code == 1 and errors == ['error: %s:1: expected 4 fields "short long ISO F", found 3'
                                    % (dataset / LIST)]


def test_list_naming_a_missing_file(dataset):
    (dataset / SHORT).unlink()
    code, errors, _ = check(dataset)
    assert code == 1 and errors == [
        'error: %s: 0 of 1 pairs present, 1 of 2 listed files missing; first missing: %s (line 1)'
        % (dataset / LIST, dataset / SHORT)]


def test_name_without_a_parsable_exposure(dataset):
    (dataset / SHORT).rename(dataset / 'Sony/short/00001_00.dng')
    (dataset / LIST).write_text((dataset / LIST).read_text().replace('00001_00_0.04s', '00001_00'))
    code, errors, _ = check(dataset)
    assert code == 1 and len(errors) == 1
    assert errors[0].startswith('error: %s:1: %s: file name does not follow the SID scheme'
                                % (dataset / LIST, dataset / 'Sony/short/00001_00.dng'))


def test_odd_sized_raw(dataset):
    make_dataset.write_dng(str(dataset / SHORT), np.full((95, 136), 600, np.uint16), 100, 8.0, 0.04)
    code, errors, _ = check(dataset)
    assert code == 1 and errors == ['error: %s: raw size 95x136 is not even in height and width; '
                                    'SID packing needs 2x2 Bayer cells' % (dataset / SHORT)]


def test_partial_download_of_the_official_lists_is_one_summary_per_list(tmp_path):
    """Without arguments the authors' three lists in the project root are checked."""
    train, test, val = (official_lines(name) for name in OFFICIAL_LISTS)
    write_raws_for_lines(tmp_path, train[:3] + val)
    code, errors, out = check(tmp_path, lists=())
    train_path, test_path, val_path = (os.path.join(ROOT, name) for name in OFFICIAL_LISTS)
    first_train_missing = tmp_path / train[3].split()[0][2:]
    assert code == 1 and errors == [
        'error: %s: 3 of 1865 pairs present, %d of %d listed files missing; first missing: %s '
        '(line 4)' % (train_path, n_files(train) - n_files(train[:3]), n_files(train),
                      first_train_missing),
        'error: %s: 0 of 598 pairs present, %d of %d listed files missing; first missing: %s '
        '(line 1)' % (test_path, n_files(test), n_files(test), tmp_path / test[0].split()[0][2:])]
    assert out.splitlines() == ['%s: 234 of 234 pairs present' % val_path]


def n_files(lines):
    return len(set(path for line in lines for path in line.split()[:2]))


def test_list_with_swapped_columns(dataset):
    short, long_, iso, fnumber = (dataset / LIST).read_text().split()
    (dataset / LIST).write_text(' '.join([long_, short, iso, fnumber]) + '\n')
    code, errors, _ = check(dataset)
    assert code == 1 and errors == [
        'error: %s:1: the short-exposure column names %s, in a long/ folder: are the two columns '
        'swapped?' % (dataset / LIST, dataset / 'Sony/long/00001_00_10s.dng')]


def test_list_that_is_not_utf8(dataset):
    (dataset / LIST).write_bytes((dataset / LIST).read_bytes() + b'# caf\xe9\n')
    code, errors, _ = check(dataset)
    assert code == 1 and errors == ['error: %s:2: not a UTF-8 text list file (byte 0xe9)'
                                    % (dataset / LIST)]


def test_fuji_raws_are_read_as_x_trans(tiny_fuji_dataset):
    """--camera=Fuji reads every raw as train_Fuji.py does; a Bayer set is refused per file."""
    lists = [tiny_fuji_dataset / name for name in ('Fuji_train_list.txt', 'Fuji_val_list.txt')]
    result = run_script('scripts/check_dataset.py', '--data_dir', tiny_fuji_dataset,
                        '--camera=fuji', *lists)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ['%s: 4 of 4 pairs present' % lists[0],
                                              '%s: 2 of 2 pairs present' % lists[1]]
    # The Sony profile refuses X-Trans raws, one line per file.
    code, errors, _ = check(tiny_fuji_dataset, lists=lists[1:])
    assert code == 1 and len(errors) == 3  # a long and two short exposures
    assert all(e.endswith('X-Trans sensor: needs a Fuji model') for e in errors), errors


def test_bayer_raws_are_refused_by_the_fuji_profile(dataset):
    result = run_script('scripts/check_dataset.py', '--data_dir', dataset, '--camera=Fuji',
                        dataset / LIST)
    errors = [l for l in result.stderr.splitlines() if l.startswith('error:')]
    assert result.returncode == 1 and len(errors) == 2
    long_ = dataset / 'Sony/long/00001_00_10s.dng'
    assert errors[0].startswith('error: %s: not a 6x6 X-Trans raw' % long_)


def test_without_lists_the_fuji_profile_checks_the_authors_fuji_lists(tmp_path):
    result = run_script('scripts/check_dataset.py', '--data_dir', tmp_path, '--camera=Fuji')
    errors = [l for l in result.stderr.splitlines() if l.startswith('error:')]
    assert result.returncode == 1
    assert [e.split(': ')[1] for e in errors] == [
        os.path.join(ROOT, 'Fuji_%s_list.txt' % split) for split in ('train', 'test', 'val')]
    assert all(' 0 of ' in e for e in errors)


def test_bayer_profile_reads_any_bayer_phase_and_needs_lists(tiny_bayer_dataset):
    """--camera=bayer (another camera's pairs for train_Sony.py --camera=bayer): GRBG raws decode
    cleanly where the Sony profile refuses them; it has no default lists to fall back on."""
    lists = [tiny_bayer_dataset / ('Bayer_%s_list.txt' % split) for split in ('train', 'test')]
    result = run_script('scripts/check_dataset.py', '--data_dir', tiny_bayer_dataset,
                        '--camera=bayer', *lists)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith('15 raw files in ')
    sony = run_script('scripts/check_dataset.py', '--data_dir', tiny_bayer_dataset, lists[1])
    assert sony.returncode == 1 and 'CFA order GRBG, expected RGGB' in sony.stderr
    result = run_script('scripts/check_dataset.py', '--data_dir', tiny_bayer_dataset,
                        '--camera=bayer')
    assert result.returncode == 1 and result.stderr.splitlines() == [
        'error: --camera=bayer has no default lists: name your list files after the flags']
