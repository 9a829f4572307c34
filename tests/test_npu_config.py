"""npu_config: resolve() rules, the real session protobufs, optimizer wrapping and HCCL wiring.

Ascend code paths run against the test double in tests/fakes, which imitates the real adapter's
Python layer (Ascend/tensorflow r1.6.0; each file names the one it imitates): npu_bridge and hccl
are not installable off-device. The double is on sys.path only inside the tests that ask for the
`fake_npu` fixture and its modules leave sys.modules afterwards.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from tensorflow.core.protobuf.config_pb2 import ConfigProto
from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig

import cli
import npu_config
from npu_config import Distribution, Runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKES = os.path.join(ROOT, 'tests', 'fakes')
RANK_TABLE = os.path.join(ROOT, 'scripts', 'modelzoo', 'rank_table_8p.json')
FAKE_PACKAGES = ('npu_bridge', 'hccl')
LR = 0.1

NPU_MIXED = Runtime('npu', 'mixed', 'allow_mix_precision')
NPU_FP32 = Runtime('npu', 'fp32', 'allow_fp32_to_fp16')
GPU_MIXED = Runtime('gpu', 'mixed', None)
GPU_FP32 = Runtime('gpu', 'fp32', None)
CPU = Runtime('cpu', 'fp32', None)


def _ops_named(name):
    """Ops of the default graph called `name` (TF appends _1, _2 ... and name scopes)."""
    pattern = re.compile(r'(^|/)%s(_\d+)?$' % name)
    return [op for op in tf.get_default_graph().get_operations() if pattern.search(op.name)]


def _ascend_modules():
    return sorted(m for m in sys.modules if m.split('.')[0] in FAKE_PACKAGES)


@pytest.fixture
def fake_npu(monkeypatch):
    """The npu_bridge/hccl test double importable for one test, then gone from sys.modules."""
    assert not _ascend_modules(), 'a previous test leaked npu_bridge/hccl modules'
    monkeypatch.syspath_prepend(FAKES)
    yield
    for name in _ascend_modules():
        del sys.modules[name]


HCCL_RANK3 = {'RANK_TABLE_FILE': RANK_TABLE, 'RANK_ID': '3', 'RANK_SIZE': '8',
              'ASCEND_DEVICE_ID': '3', 'JOB_ID': '10087'}


@pytest.fixture
def hccl_rank3(fake_npu, monkeypatch):
    """Rank 3 of the example 8-device table, as scripts/modelzoo/train_full_8p.sh sets it up."""
    for key, value in HCCL_RANK3.items():
        monkeypatch.setenv(key, value)
    return Distribution('hccl')


# ---------------------------------------------------------------- resolve / describe

@pytest.mark.parametrize('args, expected', [
    (('cpu',), CPU),
    (('cpu', 'fp32'), CPU),
    (('gpu', 'auto'), GPU_FP32),
    (('gpu', 'mixed'), GPU_MIXED),
])
def test_resolve_off_ascend_with_a_gpu(monkeypatch, args, expected):
    monkeypatch.setattr(npu_config, 'gpu_present', lambda: True)
    assert npu_config.resolve(*args) == expected


def test_gpu_without_a_gpu_fails_in_one_line_like_npu_without_npu_bridge(tmp_path):
    """CUDA_VISIBLE_DEVICES=-1 hides any GPU: --device=gpu must not log device=gpu and then run on
    the CPU (soft placement would); it stops before any work, as --device=npu does."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='-1')
    for device, words in (('gpu', 'TensorFlow sees no GPU'), ('npu', 'npu_bridge')):
        out = subprocess.run([sys.executable, os.path.join(ROOT, 'test_Sony.py'),
                              '--device=%s' % device, '--result_dir=%s' % tmp_path,
                              '--test_list=%s' % (tmp_path / 'missing.txt')],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, env=env, timeout=300)
        errors = [line for line in out.stderr.splitlines() if line.startswith('error: ')]
        assert out.returncode == 1 and len(errors) == 1, out.stderr[-2000:]
        assert words in errors[0] and '--device=%s' % device in errors[0]
        assert 'device=' not in out.stdout and 'Traceback' not in out.stderr


@pytest.mark.parametrize('args, expected', [
    (('npu',), NPU_MIXED),
    (('auto',), NPU_MIXED),
    (('npu', 'fp32'), NPU_FP32),
    (('npu', 'mixed', 'force_fp16'), Runtime('npu', 'mixed', 'force_fp16')),
    (('npu', 'fp32', 'force_fp16'), NPU_FP32),
])
def test_resolve_on_ascend(fake_npu, args, expected):
    assert npu_config.resolve(*args) == expected


def test_resolve_auto_without_npu_bridge():
    expected = 'gpu' if npu_config.gpu_present() else 'cpu'
    assert npu_config.resolve('auto') == Runtime(expected, 'fp32', None)


@pytest.mark.parametrize('args, message', [
    (('cpu', 'mixed'), 'CPU runs float32'),
    (('npu',), 'npu_bridge'),
    (('tpu',), 'device must be one of'),
    (('cpu', 'fp16'), 'precision must be one of'),
    (('cpu', 'fp32', 'fp8'), 'npu_precision_mode must be one of'),
])
def test_resolve_rejects(args, message):
    with pytest.raises(npu_config.ConfigError, match=message):
        npu_config.resolve(*args)


def test_resolve_rejects_gpu_when_tensorflow_sees_none(monkeypatch):
    monkeypatch.setattr(npu_config, 'gpu_present', lambda: False)
    with pytest.raises(npu_config.ConfigError, match='--device=gpu but TensorFlow sees no GPU'):
        npu_config.resolve('gpu')
    assert npu_config.resolve('auto') == CPU  # auto still falls back to the CPU


def test_config_errors_end_scripts_with_one_line():
    """Every script's main() is wrapped in fail_cleanly, which catches SidError; being a
    ValueError too keeps callers that catch ValueError working."""
    assert issubclass(npu_config.ConfigError, cli.SidError)
    assert issubclass(npu_config.ConfigError, ValueError)


@pytest.mark.parametrize('rt, words', [
    (NPU_MIXED, ('device=npu precision=mixed', 'precision_mode=allow_mix_precision',
                 'loss scale from 2^32')),
    (NPU_FP32, ('device=npu precision=fp32', 'precision_mode=allow_fp32_to_fp16',
                'float32 except Conv2D, which the 910 computes in float16')),
    (GPU_MIXED, ('device=gpu precision=mixed', 'automatic mixed precision', 'dynamic loss')),
    (GPU_FP32, ('device=gpu precision=fp32 (float32)',)),
    (CPU, ('device=cpu precision=fp32 (float32)',)),
])
def test_describe(rt, words):
    line = npu_config.describe(rt)
    assert '\n' not in line
    for word in words:
        assert word in line
    if rt != NPU_MIXED:
        assert 'loss scale from' not in line


# ---------------------------------------------------------------- session protobufs

def _roundtrip(config):
    """Serialise and parse back: what the session really receives."""
    return ConfigProto.FromString(config.SerializeToString())


@pytest.mark.parametrize('rt, mode', [(NPU_MIXED, b'allow_mix_precision'),
                                      (NPU_FP32, b'allow_fp32_to_fp16')])
def test_npu_session_config_is_the_adapters_own(fake_npu, rt, mode):
    """NpuOptimizer with our precision mode, finished by the adapter's npu_config_proto: soft
    placement on, remapping, memory optimisation and XLA JIT off (r1.6.0 npu_init.py)."""
    config = _roundtrip(npu_config.session_config(rt, local_rank=5))
    rewrite = config.graph_options.rewrite_options
    assert [c.name for c in rewrite.custom_optimizers] == ['NpuOptimizer']
    params = rewrite.custom_optimizers[0].parameter_map
    assert params['use_off_line'].b is True
    assert params['precision_mode'].s == mode
    assert rewrite.remapping == RewriterConfig.OFF
    assert rewrite.memory_optimization == RewriterConfig.OFF
    assert config.graph_options.optimizer_options.global_jit_level == tf.OptimizerOptions.OFF
    assert rewrite.auto_mixed_precision == RewriterConfig.DEFAULT
    assert config.allow_soft_placement and not config.log_device_placement
    assert config.gpu_options.visible_device_list == ''  # Ascend picks its device from the env


@pytest.mark.parametrize('rt', [NPU_MIXED, NPU_FP32])
def test_every_npu_session_config_loads_the_adapter(fake_npu, rt):
    """Importing npu_bridge loads _tf_adapter.so (helper/helper.py); without it TensorFlow drops
    the unknown NpuOptimizer silently and the 'NPU' session runs on the host. fp32 on one device
    uses no npu_bridge optimizer, so only the session config can make sure."""
    assert 'npu_bridge.helper.helper' not in sys.modules
    npu_config.session_config(rt)
    assert sys.modules['npu_bridge.helper.helper'].LOADED


@pytest.mark.parametrize('rt, local_rank, amp, devices', [
    (GPU_MIXED, None, RewriterConfig.ON, ''),
    (GPU_MIXED, 3, RewriterConfig.ON, '3'),
    (GPU_FP32, 1, RewriterConfig.DEFAULT, '1'),
])
def test_gpu_session_config(rt, local_rank, amp, devices):
    config = _roundtrip(npu_config.session_config(rt, local_rank))
    rewrite = config.graph_options.rewrite_options
    assert config.gpu_options.allow_growth
    assert config.gpu_options.visible_device_list == devices
    assert rewrite.auto_mixed_precision == amp
    assert not rewrite.custom_optimizers
    assert rewrite.remapping == RewriterConfig.DEFAULT
    assert config.allow_soft_placement


def test_cpu_session_config():
    config = _roundtrip(npu_config.session_config(CPU, local_rank=1))
    rewrite = config.graph_options.rewrite_options
    assert not rewrite.custom_optimizers
    assert rewrite.auto_mixed_precision == RewriterConfig.DEFAULT
    assert not config.gpu_options.allow_growth
    assert config.allow_soft_placement


# ---------------------------------------------------------------- optimizer wrapping

def _quadratic():
    """A variable at [1, -2] and the loss sum(w^2): gradient 2w, Adam's first step is -lr*sign."""
    w = tf.get_variable('w', initializer=tf.constant([1.0, -2.0]))
    return w, tf.reduce_sum(tf.square(w))


def _one_step(train_op, w):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train_op)
        return sess.run(w)


def test_cpu_and_gpu_fp32_leave_the_optimizer_alone():
    with tf.Graph().as_default():
        adam = tf.train.AdamOptimizer(LR)
        assert npu_config.wrap_optimizer(adam, CPU) is adam
        assert npu_config.wrap_optimizer(adam, GPU_FP32, Distribution('none')) is adam


def test_gpu_mixed_wraps_in_dynamic_loss_scaling():
    """enable_mixed_precision_graph_rewrite sets process-global state: always switch it off."""
    try:
        with tf.Graph().as_default():
            adam = tf.train.AdamOptimizer(LR)
            opt = npu_config.wrap_optimizer(adam, GPU_MIXED)
            assert isinstance(opt, tf.train.experimental.MixedPrecisionLossScaleOptimizer)
            assert opt._optimizer is adam
            assert type(opt._loss_scale).__name__ == 'DynamicLossScale'
            w, loss = _quadratic()
            np.testing.assert_allclose(_one_step(opt.minimize(loss), w), [1 - LR, -2 + LR],
                                       rtol=1e-5)
    finally:
        tf.train.experimental.disable_mixed_precision_graph_rewrite()


def test_cpu_path_never_imports_npu_bridge(fake_npu):
    """Even with npu_bridge importable, choosing the CPU must not load it (nor hccl)."""
    with tf.Graph().as_default():
        rt = npu_config.resolve('cpu')
        dist = Distribution('none')
        npu_config.session_config(rt, dist.local_rank)
        w, loss = _quadratic()
        train = npu_config.wrap_optimizer(tf.train.AdamOptimizer(LR), rt, dist).minimize(loss)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run([dist.broadcast_op(), train])
    assert _ascend_modules() == []


def test_npu_mixed_1p_loss_scaling(fake_npu):
    from npu_bridge.estimator.npu.npu_loss_scale_manager import ExponentialUpdateLossScaleManager
    from npu_bridge.estimator.npu.npu_loss_scale_optimizer import NPULossScaleOptimizer
    with tf.Graph().as_default():
        adam = tf.train.AdamOptimizer(LR)
        opt = npu_config.wrap_optimizer(adam, NPU_MIXED)
        assert type(opt) is NPULossScaleOptimizer
        assert opt._opt is adam and opt._is_distributed is False
        manager = opt._loss_scale_manager
        assert type(manager) is ExponentialUpdateLossScaleManager
        assert (manager._incr_every_n_steps, manager._decr_every_n_nan_or_inf,
                manager._decr_ratio) == (1000, 2, 0.5)
        w, loss = _quadratic()
        train = opt.minimize(loss)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            assert sess.run(manager.get_loss_scale()) == 2.0 ** 32
            sess.run(train)
            np.testing.assert_allclose(sess.run(w), [1 - LR, -2 + LR], rtol=1e-5)


NAMES_PROBE = r'''
import tensorflow.compat.v1 as tf
import npu_config
tf.disable_v2_behavior()  # as every script does
w = tf.get_variable('w', initializer=tf.constant([1.0, -2.0]))
opt = npu_config.wrap_optimizer(tf.train.AdamOptimizer(0.1), npu_config.resolve('npu'))
opt.minimize(tf.reduce_sum(tf.square(w)))
print(' '.join(sorted(v.op.name for v in tf.global_variables())))
'''


def test_npu_mixed_checkpoint_names_are_the_real_adapters():
    """What an NPU mixed-precision checkpoint holds: the loss-scale manager's variables at the root
    (variable_scope.variable in npu_loss_scale_manager.py) and Adam's power accumulators under
    the cond that applies the step only when the float status is clean (the scripts' TF 1.x
    variables take the scope of the cond they are made in, on every runtime)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, FAKES]), TF_CPP_MIN_LOG_LEVEL='3')
    out = subprocess.run([sys.executable, '-c', NAMES_PROBE], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ['bad_steps', 'cond/beta1_power', 'cond/beta2_power',
                                  'good_steps', 'loss_scale', 'w', 'w/Adam', 'w/Adam_1']


def test_npu_float_status_skips_overflowing_steps_and_halves_the_scale(fake_npu):
    """The float-status path of r1.6.0 (shape [1]): a step whose gradients overflow is not
    applied; after two such steps the loss scale is halved (decr_ratio 0.5)."""
    from npu_bridge.helper import helper
    with tf.Graph().as_default():
        w = tf.get_variable('w', initializer=tf.constant([1.0, -2.0]))
        blow_up = tf.placeholder_with_default(1.0, [])
        opt = npu_config.wrap_optimizer(tf.train.AdamOptimizer(LR), NPU_MIXED)
        train = opt.minimize(tf.reduce_sum(tf.square(w)) * blow_up)
        assert opt._float_status.shape.as_list() == helper.FLOAT_STATUS_SHAPE == [1]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(2):
                sess.run(train, {blow_up: np.inf})
            np.testing.assert_array_equal(sess.run(w), [1.0, -2.0])
            assert sess.run(opt._loss_scale_manager.get_loss_scale()) == 2.0 ** 31
            sess.run(train)
            np.testing.assert_allclose(sess.run(w), [1 - LR, -2 + LR], rtol=1e-5)


def test_npu_fp32_1p_is_plain(fake_npu):
    with tf.Graph().as_default():
        adam = tf.train.AdamOptimizer(LR)
        assert npu_config.wrap_optimizer(adam, NPU_FP32) is adam
    assert 'npu_bridge.estimator.npu.npu_loss_scale_optimizer' not in sys.modules


# ---------------------------------------------------------------- HCCL

def test_hccl_distribution_from_rank_table(hccl_rank3):
    dist = hccl_rank3
    assert (dist.backend, dist.rank, dist.size, dist.local_rank, dist.local_size) == (
        'hccl', 3, 8, 3, 8)
    assert not dist.is_chief
    assert dist.shard(list(range(20))) == [3, 11, 19]


def test_hccl_world_never_asks_hccl_before_it_is_initialised(fake_npu, monkeypatch):
    """hccl.manage.api answers only after GE (or initialize_system run in a session) has
    initialised collective communication; before, it raises. The world comes from the launcher's
    environment and the rank table, which is what it is checked against anyway."""
    from hccl.manage import api
    from npu_bridge.estimator import npu_ops
    for key, value in HCCL_RANK3.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=r'get rank id error\. ret\['):
        api.get_rank_id()
    dist = Distribution('hccl')
    assert (dist.rank, dist.size) == (3, 8)
    with tf.Graph().as_default(), tf.Session() as sess:  # what npu_init.init_resource does
        sess.run(npu_ops.initialize_system())
    assert (api.get_rank_id(), api.get_rank_size(), api.get_local_rank_id()) == (3, 8, 3)


def test_hccl_shards_cover_the_training_set_once(fake_npu, monkeypatch):
    for key, value in HCCL_RANK3.items():
        monkeypatch.setenv(key, value)
    scenes = list(range(161))  # the Sony training set's 161 scene ids, as positions
    shards = []
    for rank in range(8):
        monkeypatch.setenv('RANK_ID', str(rank))
        dist = Distribution('hccl')
        assert dist.is_chief == (rank == 0)
        shards.append(dist.shard(scenes))
    assert sorted(sum(shards, [])) == scenes
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


@pytest.mark.parametrize('env, message', [
    ({'RANK_ID': None}, 'RANK_ID'),
    ({'ASCEND_DEVICE_ID': None}, 'ASCEND_DEVICE_ID or DEVICE_ID'),
    ({'RANK_TABLE_FILE': '/nonexistent/rank_table.json'}, 'No such file'),
    ({'RANK_TABLE_FILE': __file__}, 'not an HCCL rank table'),
    ({'RANK_SIZE': '4'}, 'RANK_SIZE=4 but %s lists 8 devices' % RANK_TABLE),
    ({'RANK_SIZE': 'eight'}, 'RANK_SIZE=eight is not a number'),
    ({'RANK_ID': '9'}, 'RANK_ID=9 is not in'),
    ({'JOB_ID': None}, 'JOB_ID is not set'),
])
def test_hccl_environment_errors(fake_npu, monkeypatch, env, message):
    base = dict(HCCL_RANK3)
    base.update(env)
    monkeypatch.delenv('DEVICE_ID', raising=False)
    for key, value in base.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    with pytest.raises(npu_config.ConfigError, match=re.escape(message)):
        Distribution('hccl')


def test_without_job_id_the_adapter_fails_building_the_graph(fake_npu, monkeypatch):
    """Why JOB_ID is checked at start: for more than one device, NPUDistributedOptimizer's
    allreduce asks NPUBasics for the size, whose job info comes from JOB_ID (npu_common.py)."""
    from npu_bridge.estimator.npu.npu_optimizer import NPUDistributedOptimizer
    for key, value in HCCL_RANK3.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv('JOB_ID')
    with tf.Graph().as_default():
        w, loss = _quadratic()
        with pytest.raises(AttributeError, match="'NoneType' object has no attribute '_rank_size'"):
            NPUDistributedOptimizer(tf.train.AdamOptimizer(LR)).minimize(loss)


def test_hccl_wrapping_order_and_step(hccl_rank3):
    """NPUDistributedOptimizer inside NPULossScaleOptimizer(is_distributed=True), and it trains."""
    from npu_bridge.estimator.npu.npu_loss_scale_optimizer import NPULossScaleOptimizer
    from npu_bridge.estimator.npu.npu_optimizer import NPUDistributedOptimizer
    with tf.Graph().as_default():
        adam = tf.train.AdamOptimizer(LR)
        opt = npu_config.wrap_optimizer(adam, NPU_MIXED, hccl_rank3)
        assert type(opt) is NPULossScaleOptimizer and opt._is_distributed is True
        assert type(opt._opt) is NPUDistributedOptimizer
        assert opt._opt._optimizer is adam
        w, loss = _quadratic()
        train = opt.minimize(loss)
        assert len(_ops_named('HcomAllReduce')) == 2  # the gradient of w and the float status
        # Every rank holds the same data in the double, so the average equals the local gradient.
        np.testing.assert_allclose(_one_step(train, w), [1 - LR, -2 + LR], rtol=1e-5)


def test_hccl_fp32_uses_the_distributed_optimizer_only(hccl_rank3):
    from npu_bridge.estimator.npu.npu_optimizer import NPUDistributedOptimizer
    with tf.Graph().as_default():
        adam = tf.train.AdamOptimizer(LR)
        opt = npu_config.wrap_optimizer(adam, NPU_FP32, hccl_rank3)
        assert type(opt) is NPUDistributedOptimizer and opt._optimizer is adam


def test_hccl_broadcast_assigns_rank0_values_back(hccl_rank3):
    """broadcast() only returns tensors: the op must assign them to the variables.

    Feeding the broadcast outputs plays rank 0's values; afterwards the variables hold them.
    """
    with tf.Graph().as_default():
        a = tf.get_variable('a', initializer=tf.constant([1.0, 2.0]))
        b = tf.get_variable('b', initializer=tf.constant(3.0))
        step = tf.get_variable('step', initializer=tf.constant(7, dtype=tf.int64))
        sync = hccl_rank3.broadcast_op()
        outputs = [op.outputs[0] for op in _ops_named('HcomBroadcast')]
        assert len(outputs) == 2  # float variables only
        rank0 = {t: np.full(t.shape.as_list(), -5.0, np.float32) for t in outputs}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(sync, feed_dict=rank0)
            np.testing.assert_array_equal(sess.run(a), [-5.0, -5.0])
            assert sess.run(b) == -5.0
            assert sess.run(step) == 7


def test_single_rank_broadcasts_are_no_ops(fake_npu, monkeypatch, tmp_path):
    with open(RANK_TABLE) as f:
        table = json.load(f)
    table['server_list'][0]['device'] = table['server_list'][0]['device'][:1]
    (tmp_path / 'rank_table_1p.json').write_text(json.dumps(table))
    for key, value in (('RANK_TABLE_FILE', str(tmp_path / 'rank_table_1p.json')), ('RANK_ID', '0'),
                       ('RANK_SIZE', '1'), ('DEVICE_ID', '0')):
        monkeypatch.setenv(key, value)
    monkeypatch.delenv('JOB_ID', raising=False)  # not needed by a world of one
    with tf.Graph().as_default():
        tf.get_variable('v', initializer=tf.constant(1.0))
        for dist in (Distribution('none'), Distribution('hccl')):
            assert (dist.rank, dist.size, dist.is_chief) == (0, 1, True)
            assert dist.shard([4, 5, 6]) == [4, 5, 6]
            assert dist.broadcast_op().type == 'NoOp'
            values = tf.constant([[1.5, 2.0]])
            assert dist.sum_op(values) is values


def test_hccl_sum_is_one_allreduce_of_float32(hccl_rank3):
    """The validation scores' collective: HcomAllReduce takes float32 (not float64)."""
    with tf.Graph().as_default():
        table = tf.placeholder(tf.float32, [3, 2])
        total = hccl_rank3.sum_op(table)
        assert [op.type for op in _ops_named('HcomAllReduce')] == ['Identity']  # the double's op
        with tf.Session() as sess:  # every rank holds this process's values in the double
            np.testing.assert_array_equal(sess.run(total, {table: np.ones((3, 2))}),
                                          np.full((3, 2), 8.0))
        with pytest.raises(TypeError, match='float64'):
            hccl_rank3.sum_op(tf.placeholder(tf.float64, [3, 2]))


def test_cores_are_shared_by_the_ranks_of_a_machine(hccl_rank3, monkeypatch):
    """8 devices on one server share its cores: a 24-vCPU host gives each rank 3 crop threads."""
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: set(range(24)), raising=False)
    assert hccl_rank3.cores() == 3
    assert Distribution('none').cores() == 24
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0}, raising=False)
    assert hccl_rank3.cores() == 1  # never 0


@pytest.mark.parametrize('rt', [GPU_MIXED, CPU])
def test_hccl_needs_the_npu(hccl_rank3, rt):
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match='use hccl on Ascend'):
            npu_config.wrap_optimizer(tf.train.AdamOptimizer(LR), rt, hccl_rank3)


def test_unknown_backend():
    with pytest.raises(ValueError, match='distributed backend must be one of'):
        Distribution('mpi')


# ---------------------------------------------------------------- flags, fresh interpreter

FLAGS_PROBE = r'''
import sys
from absl import flags
import npu_config
npu_config.define_flags(distributed=True)
flags.FLAGS(sys.argv)
rt = npu_config.runtime_from_flags()
dist = npu_config.Distribution(flags.FLAGS.distributed)
npu_config.session_config(rt, dist.local_rank)
print(npu_config.describe(rt))
print(sorted(m for m in sys.modules if m.split('.')[0] in ('npu_bridge', 'hccl')))
'''


def test_flags_in_a_fresh_interpreter_with_npu_bridge_importable():
    """The shared flags parse, and --device=cpu leaves an installed npu_bridge unimported."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, FAKES]), TF_CPP_MIN_LOG_LEVEL='2')
    out = subprocess.run([sys.executable, '-c', FLAGS_PROBE, '--device=cpu', '--precision=fp32',
                          '--distributed=none'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ['device=cpu precision=fp32 (float32)', '[]']
