"""Shared fixtures: the project root on sys.path, tiny generated SID datasets, raws named like the
authors' list files, quiet TF."""
import os
import signal
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'scripts'))
sys.path.insert(0, os.path.join(ROOT, 'scripts', 'bench'))
sys.path.insert(0, os.path.join(ROOT, 'scripts', 'modelzoo'))

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


# The authors' list files shipped in the project root (never written by tests).
OFFICIAL_LISTS = ('Sony_train_list.txt', 'Sony_test_list.txt', 'Sony_val_list.txt')
TINY_RAW_SIDE = 22  # LibRaw's smallest raw
# Tiny but realistic: big enough for 3 pooling levels of odd size and 32x32 packed patches.
TINY_HEIGHT, TINY_WIDTH = 96, 136


def run_script(script, *args, **kwargs):
    """Run a project script as a user would; returns the CompletedProcess (text output)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop('TF_CPP_MIN_LOG_LEVEL', None)  # the scripts' own quiet start-up is part of the test
    env.update(kwargs.pop('env', {}))
    return subprocess.run([sys.executable, os.path.join(ROOT, script)] + [str(a) for a in args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=env, cwd=kwargs.pop('cwd', None), timeout=kwargs.pop('timeout', 600))


@pytest.fixture(scope='session')
def no_tensorflow(tmp_path_factory):
    """run_script's env for a PYTHONPATH on which importing TensorFlow fails: refusals of bad
    input must come before the seconds the import takes."""
    folder = tmp_path_factory.mktemp('no_tf')
    (folder / 'tensorflow').mkdir()
    (folder / 'tensorflow' / '__init__.py').write_text('raise ImportError("TensorFlow loaded")\n')
    return {'PYTHONPATH': os.pathsep.join([str(folder), ROOT])}


# The slowest test files, slowest first (1-3.5 minutes each per runtime on 2 cores):
# they are collected first, so that pytest-xdist (scripts/test_runtimes.py, whole files per
# worker) starts them early instead of leaving one of them running alone at the end.
SLOWEST_FILES = ('test_docs_commands.py', 'test_export_model.py', 'test_train_Sony.py',
                 'test_enhance.py', 'test_modelzoo_scripts.py', 'test_test_Sony.py',
                 'test_npu_paths.py', 'test_distributed.py')


def pytest_collection_modifyitems(items):
    def rank(item):
        name = os.path.basename(str(item.fspath))
        return SLOWEST_FILES.index(name) if name in SLOWEST_FILES else len(SLOWEST_FILES)
    items.sort(key=rank)  # stable: the order inside a file, and among the others, is kept


# kill -9 trials per crash-injection test (test_export_model.py, test_enhance.py). Issue 16 asked
# for 20: they run on the Ascend image's stack (TensorFlow 1.15). What the trials check - renames,
# stamps, manifests - is the same Python on every runtime, so the TensorFlow 2 runtimes draw fewer
# kills: there 20 trials take 1.5-2 minutes per test (the import alone is 3.5-4 s a run), which
# the CI budget cannot give on every runtime. SID_CRASH_TRIALS=<n> sets the count everywhere.
CRASH_TRIALS_ENV = 'SID_CRASH_TRIALS'
CRASH_TRIALS_TF1 = 20
CRASH_TRIALS_TF2 = 7


def crash_trials():
    import tensorflow as tf
    if os.environ.get(CRASH_TRIALS_ENV):
        return int(os.environ[CRASH_TRIALS_ENV])
    return CRASH_TRIALS_TF1 if tf.__version__.startswith('1.') else CRASH_TRIALS_TF2


def ctrl_c_enabled():
    """preexec_fn for a child a test will Ctrl-C: a non-interactive shell starts its background
    jobs with SIGINT ignored (a suite launched with `&`, some CI runners), every child inherits
    that, and the test's SIGINT would then do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def official_lines(name):
    with open(os.path.join(ROOT, name)) as f:
        return f.read().splitlines()


def write_raws_for_lines(root, lines):
    """Tiny flat DNG raws at the paths named by official list lines; each short exposure carries its
    line's ISO and F-number in EXIF (what make_lists.py reads), the exposure its name's."""
    import numpy as np
    import make_dataset
    import raw_io
    import sid_lists
    bayer = np.full((TINY_RAW_SIDE, TINY_RAW_SIDE), raw_io.BLACK_LEVEL + 100, np.uint16)
    for line in lines:
        short, long_, iso, fnumber = line.split()
        for rel in (short, long_):
            path = os.path.join(str(root), rel)
            if not os.path.exists(path):
                make_dataset.write_dng(path, bayer, int(iso[len('ISO'):]),
                                       float(fnumber[len('F'):]), sid_lists.parse_name(rel)[2])


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


# The smallest X-Trans raws LibRaw demosaics (postprocess needs 512 on each side; make_dataset's
# XTRANS_MIN_SIDE), neither side a multiple of 6 like the X-T2's 6032 columns, so packing crops
# them to 510 x 516: packed 170 x 172 x 9.
FUJI_HEIGHT, FUJI_WIDTH = 512, 520


@pytest.fixture(scope='session')
def tiny_fuji_dataset(tmp_path_factory):
    """A read-only tiny X-Trans dataset (2 train, 1 test, 1 val scene; 2 bursts) shared by the
    session: do not modify it (pass --cache_dir elsewhere when training on it)."""
    root = tmp_path_factory.mktemp('fuji')
    make_tiny_dataset(root, camera='fuji', height=FUJI_HEIGHT, width=FUJI_WIDTH, n_train=2,
                      n_test=1, n_val=1)
    return root


@pytest.fixture(scope='session')
def tiny_bayer_dataset(tmp_path_factory):
    """A read-only tiny set of another Bayer camera (make_dataset's 'bayer': 12-bit GRBG, black
    600-603 per site) for --camera=bayer, shared by the session: do not modify it (pass
    --cache_dir elsewhere when training on it)."""
    root = tmp_path_factory.mktemp('bayer')
    make_tiny_dataset(root, camera='bayer')
    return root


def to_uint8(rgb16):
    """A 16-bit developed image as test_Sony.py's 8-bit PNGs store it (rounded half up)."""
    import numpy as np
    import raw_io
    return np.floor(rgb16 / raw_io.GT_SCALE * 255 + 0.5).astype(np.uint8)


@pytest.fixture
def results(tiny_dataset, tmp_path):
    """test_Sony.py's three PNGs for each _00 test pair of the tiny dataset, in
    tmp_path/result/final; the 'network output' is the ground truth, blurred."""
    from PIL import Image, ImageFilter
    import raw_io
    import sid_lists
    final = tmp_path / 'result' / 'final'
    os.makedirs(str(final))
    for pair in sid_lists.read_list(str(tiny_dataset / 'Sony_test_list.txt'), str(tiny_dataset)):
        scene, burst, _ = sid_lists.parse_name(pair.short)
        if burst:
            continue
        ratio = int(round(sid_lists.exposure_ratio(pair.short, pair.long)))
        gt = to_uint8(raw_io.postprocess(pair.long))
        stem = str(final / ('%05d_%02d_%d_' % (scene, burst, ratio)))
        Image.fromarray(gt).save(stem + 'gt.png')
        Image.fromarray(gt).filter(ImageFilter.SMOOTH).save(stem + 'out.png')
        Image.fromarray(to_uint8(raw_io.postprocess(pair.short))).save(stem + 'scale.png')
    return tmp_path / 'result'
