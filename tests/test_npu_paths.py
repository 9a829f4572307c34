"""Every script's NPU path, run on the CPU against the test double of the real adapter
(tests/fakes, which imitates Ascend/tensorflow r1.6.0's Python layer), watched by a spy.

The spy stands in for two things the double cannot show on a CPU: whether the process had loaded
the adapter's library (by importing npu_bridge) when it made a session naming NpuOptimizer -
TensorFlow silently runs such a session on the host otherwise - and whether a session fed its
network more than one input shape, which GeOp refuses without dynamic_input
(tf_adapter/kernels/geop_npu.cc: "The input shape of ... is dynamic").
"""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from conftest import ROOT, TINY_HEIGHT, TINY_WIDTH

FAKES = os.path.join(ROOT, 'tests', 'fakes')
PS = 32
TIMEOUT = 600

SPY = r'''
import runpy
import sys
import tensorflow.compat.v1 as tf

_Session = tf.Session


class SpySession(_Session):
    def __init__(self, *args, **kwargs):
        config = kwargs.get('config')
        rewrite = config.graph_options.rewrite_options if config is not None else None
        self._npu = rewrite is not None and any(
            c.name == 'NpuOptimizer' for c in rewrite.custom_optimizers)
        self._shapes = {}
        if self._npu:
            print('SPY npu session, adapter loaded: %s'
                  % ('npu_bridge.helper.helper' in sys.modules))
        super(SpySession, self).__init__(*args, **kwargs)

    def run(self, fetches, feed_dict=None, *args, **kwargs):
        for key, value in (feed_dict or {}).items():
            shape = tuple(getattr(value, 'shape', ()))
            if self._npu and len(shape) == 4:
                name = getattr(key, 'name', str(key))
                first = self._shapes.setdefault(name, shape)
                if first != shape:
                    print('SPY %s fed %s after %s' % (name, shape, first))
        return super(SpySession, self).run(fetches, feed_dict, *args, **kwargs)


tf.Session = SpySession
sys.argv = sys.argv[1:]
sys.path.insert(0, __import__('os').path.dirname(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name='__main__')
'''
SPY_LOADED = 'SPY npu session, adapter loaded: True'
SPY_SECOND_SHAPE_RE = re.compile(r'^SPY \S+ fed ')


def spied(tmp_path, script, *args, **env):
    """Run a project script (path relative to the root) under the spy with npu_bridge importable;
    returns the CompletedProcess."""
    spy = tmp_path / 'spy.py'
    spy.write_text(SPY)
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, FAKES]),
                    TF_CPP_MIN_LOG_LEVEL='2')
    for key in ('RANK_TABLE_FILE', 'RANK_ID', 'RANK_SIZE', 'JOB_ID'):
        full_env.pop(key, None)
    full_env.update(env)
    return subprocess.run([sys.executable, str(spy), os.path.join(ROOT, script)] +
                          [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=full_env, timeout=TIMEOUT)


def check_spy(out):
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    npu_sessions = [line for line in lines if line.startswith('SPY npu session')]
    assert npu_sessions and set(npu_sessions) == {SPY_LOADED}, out.stdout[-2000:]
    assert not [line for line in lines if SPY_SECOND_SHAPE_RE.match(line)], out.stdout[-2000:]
    return lines


def train_args(dataset, tmp_path, checkpoint_dir, epochs, *extra):
    return ['--data_dir=%s' % dataset, '--train_list=%s' % (dataset / 'Sony_train_list.txt'),
            '--cache_dir=%s' % (tmp_path / 'cache'), '--checkpoint_dir=%s' % checkpoint_dir,
            '--result_dir=%s' % (tmp_path / 'result'), '--epochs=%d' % epochs, '--ps=%d' % PS,
            '--cache_workers=1', '--progress=lines'] + list(extra)


@pytest.fixture(scope='module')
def npu_trained(tiny_dataset, tmp_path_factory):
    """One epoch of mixed-precision training on the 'NPU', with a validation: its checkpoint."""
    tmp_path = tmp_path_factory.mktemp('npu_train')
    out = spied(tmp_path, 'train_Sony.py', '--device=npu', *train_args(
        tiny_dataset, tmp_path, tmp_path / 'ckpt', 1,
        '--val_list=%s' % (tiny_dataset / 'Sony_val_list.txt'), '--val_every=1'))
    return tmp_path, out


def test_npu_training_loads_the_adapter_and_validates_at_one_shape(npu_trained):
    tmp_path, out = npu_trained
    lines = check_spy(out)
    assert lines[0].startswith('device=npu precision=mixed (Ascend precision_mode='
                               'allow_mix_precision')
    assert [line for line in lines if line.startswith('Validation epoch 1: pairs=1 ')]
    assert tf.train.load_variable(str(tmp_path / 'ckpt'), 'loss_scale') == 2.0 ** 32


def test_npu_fp32_training_loads_the_adapter_too(tiny_dataset, tmp_path):
    """fp32 on one device uses no npu_bridge optimizer: only the session config imports it."""
    out = spied(tmp_path, 'train_Sony.py', '--device=npu', '--precision=fp32',
                *train_args(tiny_dataset, tmp_path, tmp_path / 'ckpt', 1))
    lines = check_spy(out)
    assert lines[0] == ('device=npu precision=fp32 (Ascend precision_mode=allow_fp32_to_fp16: '
                        'float32 except Conv2D, which the 910 computes in float16), rank 0 of 1')


def test_npu_test_feeds_one_window_and_loads_the_adapter(tiny_dataset, npu_trained, tmp_path):
    """--tile=32 on a 48 x 68 packed frame: the CPU would feed tiles of four sizes; the NPU path
    feeds every tile as one (32 + 2 x 96)-px window and says so; the PNGs are whole."""
    ckpt = npu_trained[0] / 'ckpt'
    out = spied(tmp_path, 'test_Sony.py', '--device=npu', '--data_dir=%s' % tiny_dataset,
                '--test_list=%s' % (tiny_dataset / 'Sony_test_list.txt'),
                '--checkpoint_dir=%s' % ckpt, '--result_dir=%s' % tmp_path, '--tile=32')
    lines = check_spy(out)
    assert 'the NPU compiles one input shape: every tile is fed as 224x224 packed px' in lines
    final = sorted(os.listdir(str(tmp_path / 'final')))
    assert len([n for n in final if n.endswith('_out.png')]) == 2
    from PIL import Image
    output = [n for n in final if n.endswith('_out.png')][0]
    with Image.open(str(tmp_path / 'final' / output)) as im:
        assert im.size == (TINY_WIDTH, TINY_HEIGHT)
        assert im.info['sid_inference'] == ('device=npu precision=mixed npu_precision_mode='
                                            'allow_mix_precision tiling=inexact window=224x224 '
                                            'overlap=96')


def test_npu_enhance_feeds_one_window_and_loads_the_adapter(tiny_dataset, npu_trained, tmp_path):
    """enhance.py picks the NPU when npu_bridge is importable; two raws, one window shape."""
    raws = sorted(str(p) for p in (tiny_dataset / 'Sony' / 'short').glob('1000[12]_00_*'))
    out = spied(tmp_path, 'scripts/enhance.py', '--checkpoint_dir=%s' % (npu_trained[0] / 'ckpt'),
                '--ratio=100', '--out_dir=%s' % tmp_path, '--tile=32', *raws)
    lines = check_spy(out)
    assert lines[0].startswith('device=npu precision=mixed')
    assert len(list(tmp_path.glob('*_sid.png'))) == 2


def test_npu_inference_refuses_a_multi_device_environment(tiny_dataset, npu_trained, tmp_path):
    """An 8-device run's RANK_SIZE and RANK_TABLE_FILE left exported: GE would set up HCCL for
    ranks that do not exist. One line, before any work."""
    out = spied(tmp_path, 'test_Sony.py', '--device=npu', '--data_dir=%s' % tiny_dataset,
                '--test_list=%s' % (tiny_dataset / 'Sony_test_list.txt'),
                '--checkpoint_dir=%s' % (npu_trained[0] / 'ckpt'),
                '--result_dir=%s' % tmp_path, RANK_SIZE='8', RANK_TABLE_FILE='/x/table.json')
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith('error: ')]
    assert errors == ['error: RANK_SIZE=8 in the environment, but this run has 1 device: set '
                      'RANK_SIZE=1 and unset RANK_TABLE_FILE'], out.stderr[-2000:]
    assert not (tmp_path / 'final').exists() or not os.listdir(str(tmp_path / 'final'))


def test_resume_across_device_and_precision_keeps_the_weights_and_says_what_starts_fresh(
        tiny_dataset, npu_trained, tmp_path):
    """An NPU mixed-precision checkpoint (loss-scale state at the root; on TF 1.15 Adam's powers
    under cond/) resumed on the CPU, then that one on the NPU again: every run goes on from the
    epoch and step it finds, Adam's state carries over (beta1_power = 0.9^(steps + 1) whatever
    the scope), and what cannot carry over is one line."""
    import shutil
    ckpt = tmp_path / 'ckpt'
    shutil.copytree(str(npu_trained[0] / 'ckpt'), str(ckpt))
    shutil.rmtree(str(ckpt / 'best'))
    steps_per_epoch = 3  # tiny_dataset's three training scenes, batch 1
    cpu = spied(tmp_path, 'train_Sony.py', '--device=cpu',
                *train_args(tiny_dataset, tmp_path, ckpt, 2, '--val_list='))
    assert cpu.returncode == 0, cpu.stderr[-3000:]
    notes = [line for line in cpu.stdout.splitlines() if line.startswith('optimizer state')]
    assert notes == ['optimizer state from another device or precision: not used: bad_steps, '
                     'good_steps, loss_scale'], cpu.stdout[-2000:]
    reader = tf.train.load_checkpoint(str(ckpt))
    names = reader.get_variable_to_shape_map()
    assert 'loss_scale' not in names and 'cond/beta1_power' not in names
    assert reader.get_tensor('global_step') == 2 * steps_per_epoch
    np.testing.assert_allclose(reader.get_tensor('beta1_power'), 0.9 ** (2 * steps_per_epoch + 1),
                               rtol=1e-5)

    npu = spied(tmp_path, 'train_Sony.py', '--device=npu',
                *train_args(tiny_dataset, tmp_path, ckpt, 3, '--val_list='))
    check_spy(npu)
    notes = [line for line in npu.stdout.splitlines() if line.startswith('optimizer state')]
    assert notes == ['optimizer state from another device or precision: starting fresh: '
                     'loss_scale, good_steps, bad_steps'], npu.stdout[-2000:]
    reader = tf.train.load_checkpoint(str(ckpt))
    power, = [n for n in reader.get_variable_to_shape_map() if n.endswith('beta1_power')]
    assert power == 'cond/beta1_power'  # the training graph's variables are TF 1.x style ones
    np.testing.assert_allclose(reader.get_tensor(power), 0.9 ** (3 * steps_per_epoch + 1),
                               rtol=1e-5)
    assert reader.get_tensor('loss_scale') == 2.0 ** 32
