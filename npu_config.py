"""Device, precision, distribution and optimizer wiring: the one place that knows about Ascend.

Ascend 910 runs TF 1.15 graphs through Huawei's `npu_bridge` adapter: the session needs the
`NpuOptimizer` custom graph optimizer (with a precision mode), and mixed precision needs loss
scaling because the NPU computes fp16 in saturation mode. GPUs get TF's automatic mixed precision
graph rewrite instead, CPUs run float32. `npu_bridge` (and Horovod) are imported lazily, only on
the path that uses them, so CPU/GPU machines never need them. TensorFlow itself is imported inside
the functions that build something, so scripts can define these flags and answer --help without
loading it.
"""
import importlib.util
import os
from collections import namedtuple

import sid_io

DEVICES = ('auto', 'npu', 'gpu', 'cpu')
PRECISIONS = ('auto', 'mixed', 'fp32')
# Ascend precision modes; fp32 maps to must_keep_origin_dtype.
NPU_MIXED_MODES = ('allow_mix_precision', 'allow_fp32_to_fp16', 'force_fp16')
NPU_FP32_MODE = 'must_keep_origin_dtype'
BACKENDS = ('none', 'horovod', 'hccl')
# The seed port's dynamic loss scale: start high, halve after 2 overflowing steps, double after
# 1000 clean ones. Overflowing steps are skipped, not fatal.
NPU_LOSS_SCALE = dict(init_loss_scale=2 ** 32, incr_every_n_steps=1000,
                      decr_every_n_nan_or_inf=2, decr_ratio=0.5)
HCCL_ENV = ('RANK_TABLE_FILE', 'RANK_ID', 'RANK_SIZE')
# The logical device of this process; without it every rank would open device 0.
DEVICE_ID_ENV = ('ASCEND_DEVICE_ID', 'DEVICE_ID')

Runtime = namedtuple('Runtime', 'device precision npu_precision_mode')


class ConfigError(sid_io.SidError, ValueError):
    """A device/precision/distribution choice that cannot work here. A SidError, so the scripts'
    fail_cleanly turns it into one `error: ...` line and exit 1 instead of a traceback."""


def npu_bridge_present():
    """True when the Ascend adapter is installed (found without importing it)."""
    return importlib.util.find_spec('npu_bridge') is not None


def gpu_present():
    import tensorflow.compat.v1 as tf
    return bool(tf.config.experimental.list_physical_devices('GPU'))


def resolve(device='auto', precision='auto', npu_precision_mode=NPU_MIXED_MODES[0]):
    """Turn the user's choices into a concrete Runtime.

    auto device: Ascend if npu_bridge is installed, else GPU if TF sees one, else CPU.
    auto precision: mixed on Ascend (the seed's allow_mix_precision), float32 elsewhere.
    An explicit npu without npu_bridge, or gpu without a visible GPU, fails here, not at the first
    lazy import deep in training or silently on the CPU.
    """
    if device not in DEVICES:
        raise ConfigError('device must be one of %s, got %r' % (DEVICES, device))
    if precision not in PRECISIONS:
        raise ConfigError('precision must be one of %s, got %r' % (PRECISIONS, precision))
    if npu_precision_mode not in NPU_MIXED_MODES:
        raise ConfigError('npu_precision_mode must be one of %s, got %r'
                          % (NPU_MIXED_MODES, npu_precision_mode))
    if device == 'auto':
        device = 'npu' if npu_bridge_present() else ('gpu' if gpu_present() else 'cpu')
    elif device == 'npu' and not npu_bridge_present():
        raise ConfigError('--device=npu needs Huawei\'s npu_bridge (CANN TF adapter), which is not '
                          'importable here; use --device=gpu/cpu or auto')
    elif device == 'gpu' and not gpu_present():
        # Else soft placement would quietly run everything on the CPU under a device=gpu log line.
        raise ConfigError('--device=gpu but TensorFlow sees no GPU here (a CPU-only TensorFlow '
                          'build, no CUDA driver, or CUDA_VISIBLE_DEVICES hides them); use '
                          '--device=cpu or auto')
    if precision == 'auto':
        precision = 'mixed' if device == 'npu' else 'fp32'
    if precision == 'mixed' and device == 'cpu':
        raise ConfigError('--precision=mixed needs an Ascend NPU or a GPU; the CPU runs float32')
    mode = None
    if device == 'npu':
        mode = npu_precision_mode if precision == 'mixed' else NPU_FP32_MODE
    return Runtime(device, precision, mode)


def describe(rt):
    """One line for the start of every log: what runs where, in which precision."""
    if rt.device == 'npu':
        detail = 'Ascend precision_mode=%s' % rt.npu_precision_mode
        if rt.precision == 'mixed':
            detail += ', dynamic loss scale from 2^32'
    elif rt.device == 'gpu':
        detail = ('automatic mixed precision graph rewrite, dynamic loss scale'
                  if rt.precision == 'mixed' else 'float32')
    else:
        detail = 'float32'
    return 'device=%s precision=%s (%s)' % (rt.device, rt.precision, detail)


def session_config(rt, local_rank=None):
    """The session ConfigProto for a Runtime. Pure TF protos: buildable and testable anywhere.

    local_rank pins one GPU per process for Horovod.
    """
    import tensorflow.compat.v1 as tf
    from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig
    config = tf.ConfigProto(allow_soft_placement=rt.device != 'npu')
    rewrite = config.graph_options.rewrite_options
    if rt.device == 'npu':
        npu = rewrite.custom_optimizers.add()
        npu.name = 'NpuOptimizer'
        npu.parameter_map['use_off_line'].b = True  # execute on the NPU, not the host
        npu.parameter_map['precision_mode'].s = tf.compat.as_bytes(rt.npu_precision_mode)
        # The adapter requires TF's own remapper and memory optimiser off: it does both itself.
        rewrite.remapping = RewriterConfig.OFF
        rewrite.memory_optimization = RewriterConfig.OFF
    elif rt.device == 'gpu':
        config.gpu_options.allow_growth = True
        if local_rank is not None:
            config.gpu_options.visible_device_list = str(local_rank)
        if rt.precision == 'mixed':
            rewrite.auto_mixed_precision = RewriterConfig.ON
    return config


class Distribution(object):
    """Data-parallel world: rank/size, gradient averaging, initial broadcast, chief-only writes.

    backend 'none' is a world of one. 'horovod' uses Horovod (GPU/CPU, gloo or MPI); 'hccl' uses
    Huawei's collective library through npu_bridge, one process per Ascend device.
    """

    def __init__(self, backend='none'):
        if backend not in BACKENDS:
            raise ConfigError('distributed backend must be one of %s, got %r' % (BACKENDS, backend))
        self.backend = backend
        self.rank, self.size, self.local_rank = 0, 1, 0
        if backend == 'horovod':
            import horovod.tensorflow as hvd
            hvd.init()
            self._hvd = hvd
            self.rank, self.size, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()
        elif backend == 'hccl':
            missing = [k for k in HCCL_ENV if not os.environ.get(k)]
            if not any(os.environ.get(k) for k in DEVICE_ID_ENV):
                missing.append(' or '.join(DEVICE_ID_ENV))
            if missing:
                raise ConfigError('--distributed=hccl needs %s in the environment (see '
                                  'scripts/train_full_8p.sh)' % ', '.join(missing))
            if not os.path.isfile(os.environ['RANK_TABLE_FILE']):
                raise ConfigError('RANK_TABLE_FILE=%s: no such file'
                                  % os.environ['RANK_TABLE_FILE'])
            from hccl.manage.api import get_local_rank_id, get_rank_id, get_rank_size
            self.rank, self.size = get_rank_id(), get_rank_size()
            self.local_rank = get_local_rank_id()
            if (self.rank, self.size) != (int(os.environ['RANK_ID']), int(os.environ['RANK_SIZE'])):
                raise ConfigError('HCCL reports rank %d of %d but RANK_ID=%s RANK_SIZE=%s'
                                  % (self.rank, self.size, os.environ['RANK_ID'],
                                     os.environ['RANK_SIZE']))

    @property
    def is_chief(self):
        """Only rank 0 writes checkpoints, samples, summaries and parseable logs."""
        return self.rank == 0

    def shard(self, items):
        """This rank's share of a list: every item goes to exactly one rank."""
        return items[self.rank::self.size]

    def broadcast_op(self):
        """Copy rank 0's initial variables to every rank; run once after initialisation."""
        import tensorflow.compat.v1 as tf
        if self.backend == 'horovod':
            return self._hvd.broadcast_global_variables(0)
        if self.backend == 'hccl' and self.size > 1:
            from npu_bridge.hccl import hccl_ops
            variables = [v for v in tf.global_variables() if v.dtype.base_dtype.is_floating]
            # broadcast() returns new tensors; without the assign nothing would change.
            return tf.group(*[tf.assign(v, hccl_ops.broadcast([v], 0)[0]) for v in variables])
        return tf.no_op()


def wrap_optimizer(optimizer, rt, dist=None):
    """The device's optimizer wrapping, innermost first: gradient averaging, then loss scaling.

    Averaging inside the loss scaling means every rank sees the same (averaged) gradients, so all
    ranks agree on overflow, skip the same steps and keep the same loss scale.
    """
    import tensorflow.compat.v1 as tf
    dist = dist or Distribution('none')
    if dist.backend not in ('none', 'hccl' if rt.device == 'npu' else 'horovod'):
        raise ConfigError('--distributed=%s does not run on device %s: use hccl on Ascend, horovod '
                          'on GPU/CPU' % (dist.backend, rt.device))
    if rt.device == 'npu':
        if dist.backend == 'hccl':
            from npu_bridge.estimator.npu.npu_optimizer import NPUDistributedOptimizer
            optimizer = NPUDistributedOptimizer(optimizer)
        if rt.precision == 'mixed':
            from npu_bridge.estimator.npu.npu_loss_scale_manager import \
                ExponentialUpdateLossScaleManager
            from npu_bridge.estimator.npu.npu_loss_scale_optimizer import NPULossScaleOptimizer
            manager = ExponentialUpdateLossScaleManager(**NPU_LOSS_SCALE)
            optimizer = NPULossScaleOptimizer(optimizer, manager,
                                              is_distributed=dist.backend == 'hccl')
        return optimizer
    if dist.backend == 'horovod':
        optimizer = dist._hvd.DistributedOptimizer(optimizer)
    if rt.device == 'gpu' and rt.precision == 'mixed':
        optimizer = tf.train.experimental.enable_mixed_precision_graph_rewrite(
            optimizer, loss_scale='dynamic')
    return optimizer


def define_flags(distributed=False):
    """The device/precision flags every script shares (and --distributed for training)."""
    from absl import flags
    flags.DEFINE_enum('device', 'auto', DEVICES,
                      'auto: Ascend if npu_bridge is installed, else GPU if visible, else CPU')
    flags.DEFINE_enum('precision', 'auto', PRECISIONS,
                      'mixed: Ascend precision_mode + loss scaling, GPU automatic mixed precision; '
                      'fp32: float32 everywhere; auto: mixed on Ascend, fp32 elsewhere')
    flags.DEFINE_enum('npu_precision_mode', NPU_MIXED_MODES[0], NPU_MIXED_MODES,
                      'Ascend precision_mode used when --precision is mixed')
    if distributed:
        flags.DEFINE_enum('distributed', 'none', BACKENDS,
                          'data parallelism: horovod (GPU/CPU, launch with horovodrun) or hccl '
                          '(Ascend, one process per device with a rank table)')


def runtime_from_flags():
    from absl import flags
    f = flags.FLAGS
    return resolve(f.device, f.precision, f.npu_precision_mode)
