"""scripts/build_cache.py: builds, verifies and repairs the decoded-raw cache; a cache folder that
cannot be written is one line, exit 1, before any decoding."""
import glob

import pytest

from conftest import make_tiny_dataset, run_script
from test_raw_cache import corrupt


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('cache_data')
    make_tiny_dataset(root, n_train=2, n_test=0, n_val=0, bursts=1)
    return root


def build(dataset, cache, *args):
    return run_script('scripts/build_cache.py', '--data_dir=%s' % dataset,
                      '--lists=%s' % (dataset / 'Sony_train_list.txt'), '--cache_dir=%s' % cache,
                      '--workers=1', *args)


def errors(proc):
    return [l for l in proc.stderr.splitlines() if l.startswith('error:') or 'Traceback' in l]


def test_build_verify_and_repair(dataset, tmp_path):
    cache = tmp_path / 'cache'
    proc = build(dataset, cache)
    assert proc.returncode == 0, proc.stderr
    assert 'cache %s: 4 entries' % cache in proc.stdout and 'verified' in proc.stdout
    entries = sorted(glob.glob(str(cache / 'Sony' / '*' / '*.npy')))
    assert len(entries) == 4
    damaged = entries[0]
    corrupt(damaged, 'overwritten data')
    # --noverify reads headers only: the damage stays unseen (train_Sony.py always verifies) ...
    proc = build(dataset, cache, '--noverify')
    assert proc.returncode == 0 and 'rebuilt' not in proc.stderr
    # ... a verifying run rebuilds the entry, saying so in one line.
    proc = build(dataset, cache)
    assert proc.returncode == 0, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if 'rebuilt' in l]
    assert len(lines) == 1 and lines[0].startswith('cache entry %s: checksum mismatch' % damaged)
    proc = build(dataset, cache)
    assert 'rebuilt' not in proc.stderr


def test_unwritable_cache_folder_is_one_line_before_decoding(dataset, tmp_path):
    (tmp_path / 'file').write_text('x')
    cache = tmp_path / 'file' / 'cache'
    proc = build(dataset, cache)
    assert proc.returncode == 1
    assert errors(proc) == ['error: %s: cannot write the decoded-raw cache (Not a directory)'
                            % cache]


def test_bayer_builds_its_own_kinds_and_needs_its_lists(tiny_bayer_dataset, tmp_path):
    cache = tmp_path / 'cache'
    common = ['--camera=bayer', '--data_dir=%s' % tiny_bayer_dataset, '--cache_dir=%s' % cache,
              '--workers=1']
    proc = run_script('scripts/build_cache.py', *common)
    assert proc.returncode == 1 and errors(proc) == [
        'error: --lists is empty (--camera=bayer has no default lists): name your list file '
        '("short long ISO F" per line)']
    assert not cache.exists()
    val_list = tiny_bayer_dataset / 'Bayer_val_list.txt'
    proc = run_script('scripts/build_cache.py', '--lists=%s' % val_list, *common)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.split('.')[-3] for p in glob.glob(str(cache / 'Bayer' / '*' / '*.npy')))
    # one scene, two bursts: their inputs and levels, one ground truth
    assert names == ['bayer_any_gt'] + ['bayer_any_input'] * 2 + ['bayer_any_levels'] * 2
