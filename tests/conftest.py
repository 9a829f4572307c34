"""Shared fixtures: the project root on sys.path, tiny generated SID datasets, quiet TF."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'scripts'))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# Horovod 0.28.1 builds against TensorFlow < 2.16 only (Horovod issue #4290). Where it can be
# built, its tests must run (scripts/run_tests.sh builds it); only newer TF skips them.
HOROVOD_TF_TOO_NEW = (2, 16)


def _horovod_unbuildable():
    import tensorflow as tf
    version = tuple(int(x) for x in tf.__version__.split('.')[:2])
    if version >= HOROVOD_TF_TOO_NEW:
        return ('Horovod 0.28.1 cannot be built against TensorFlow %s (>= 2.16, Horovod issue '
                '#4290)' % tf.__version__)
    return None


def needs_horovod(test):
    """Skip `test` only where Horovod cannot exist; elsewhere a missing Horovod fails it."""
    reason = _horovod_unbuildable()
    return pytest.mark.skipif(reason is not None, reason=reason or '')(test)


# Tiny but realistic: big enough for 3 pooling levels of odd size and 32x32 packed patches.
TINY_HEIGHT, TINY_WIDTH = 96, 136


def run_script(script, *args, **kwargs):
    """Run a project script as a user would; returns the CompletedProcess (text output)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT)
    env.update(kwargs.pop('env', {}))
    return subprocess.run([sys.executable, os.path.join(ROOT, script)] + [str(a) for a in args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=env, cwd=kwargs.pop('cwd', None), timeout=kwargs.pop('timeout', 600))


def make_tiny_dataset(root, **overrides):
    """Generate a tiny SID-layout dataset under root (raws in root/Sony, lists in root)."""
    import make_dataset
    args = dict(data_dir=str(root), height=TINY_HEIGHT, width=TINY_WIDTH, n_train=3, n_test=2,
                n_val=1, bursts=2, seed=0, list_dir=str(root))
    args.update(overrides)
    return make_dataset.generate(**args)


@pytest.fixture(scope='session')
def tiny_dataset(tmp_path_factory):
    """A read-only tiny dataset shared by the whole session: do not modify it in tests."""
    root = tmp_path_factory.mktemp('sid')
    make_tiny_dataset(root)
    return root
