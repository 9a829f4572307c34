"""Device, precision, distribution and optimizer wiring: the one place that knows about Ascend.

Ascend 910 runs TF 1.15 graphs through Huawei's `npu_bridge` adapter: the session needs the
`NpuOptimizer` custom graph optimizer (with a precision mode), and mixed precision needs loss
scaling because the NPU computes fp16 in saturation mode. GPUs get TF's automatic mixed precision
graph rewrite instead, CPUs run float32. `npu_bridge` (and Horovod) are imported lazily, only on
the path that uses them, so CPU/GPU machines never need them. TensorFlow itself is imported inside
the functions that build something, so scripts can define these flags and answer --help without
loading it.

What the real adapter does decides several rules here (Ascend/tensorflow, branch r1.6.0, the
CANN 5.0.x era; tests/fakes imitates it and names the files):
- importing npu_bridge is what loads `_tf_adapter.so` (helper/helper.py); a session whose config
  names NpuOptimizer in a process that never imported it runs on the host CPU without a word, so
  session_config() imports it for every NPU session;
- HCCL's rank queries (hccl.manage.api) fail until GE has initialised collective communication,
  so the HCCL world comes from the launcher's RANK_ID / RANK_SIZE and the rank table instead;
- NPUDistributedOptimizer's allreduce reads the job from JOB_ID when RANK_SIZE > 1 (npu_common
  .NPUBasics), and fails deep in graph building without it: checked at start;
- GeOp refuses an input shape that differs from its first one unless dynamic_input is set
  (kernels/geop_npu.cc): NPU inference feeds one fixed window shape (inference.run_network).
"""
import importlib.util
import os
from collections import namedtuple

import cli

DEVICES = ('auto', 'npu', 'gpu', 'cpu')
PRECISIONS = ('auto', 'mixed', 'fp32')
# Ascend precision modes. The 910's cube unit computes Conv2D in float16 only, and CANN's ATC
# docs say must_keep_origin_dtype cannot be used when a float32 operator has only a float16
# implementation: this U-Net would not compile. fp32 therefore maps to allow_fp32_to_fp16 (float32
# wherever the 910 has it, the convolutions in float16), and the start line says so.
NPU_MIXED_MODES = ('allow_mix_precision', 'allow_fp32_to_fp16', 'force_fp16')
NPU_FP32_MODE = 'allow_fp32_to_fp16'
BACKENDS = ('none', 'horovod', 'hccl')
# The seed port's dynamic loss scale: start high, halve after 2 overflowing steps, double after
# 1000 clean ones. Overflowing steps are skipped, not fatal.
NPU_LOSS_SCALE = dict(init_loss_scale=2 ** 32, incr_every_n_steps=1000,
                      decr_every_n_nan_or_inf=2, decr_ratio=0.5)
HCCL_ENV = ('RANK_TABLE_FILE', 'RANK_ID', 'RANK_SIZE')
# The logical device of this process; without it every rank would open device 0.
DEVICE_ID_ENV = ('ASCEND_DEVICE_ID', 'DEVICE_ID')
# npu_bridge's NPUDistributedOptimizer reads the job from this when RANK_SIZE > 1.
JOB_ID_ENV = 'JOB_ID'

Runtime = namedtuple('Runtime', 'device precision npu_precision_mode')


class ConfigError(cli.SidError, ValueError):
    """A device/precision/distribution choice that cannot work here. A SidError, so the scripts'
    fail_cleanly turns it into one `error: ...` line and exit 1 instead of a traceback."""


def npu_bridge_present():
    """True when the Ascend adapter is installed (found without importing it)."""
    return importlib.util.find_spec('npu_bridge') is not None


def gpu_present():
    tf = cli.import_tensorflow()
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


def uses_fixed_shapes(rt):
    """GeOp compiles one graph per input shape and refuses a second shape without dynamic_input
    (r1.6.0 kernels/geop_npu.cc): NPU inference feeds one window shape per session."""
    return rt.device == 'npu'


def describe(rt):
    """One line for the start of every log: what runs where, in which precision."""
    if rt.device == 'npu':
        detail = 'Ascend precision_mode=%s' % rt.npu_precision_mode
        if rt.precision == 'mixed':
            detail += ', dynamic loss scale from 2^32'
        else:
            detail += ': float32 except Conv2D, which the 910 computes in float16'
    elif rt.device == 'gpu':
        detail = ('automatic mixed precision graph rewrite, dynamic loss scale'
                  if rt.precision == 'mixed' else 'float32')
    else:
        detail = 'float32'
    return 'device=%s precision=%s (%s)' % (rt.device, rt.precision, detail)


def check_rank_size(world_size, env=None):
    """On the NPU, RANK_SIZE must describe this run: GE reads RANK_SIZE and RANK_TABLE_FILE when
    it starts and would set up HCCL for ranks that do not exist (an 8-device run's environment
    left exported for the test that follows it)."""
    env = os.environ if env is None else env
    size = env.get('RANK_SIZE', '')
    if size and size != str(world_size):
        raise ConfigError('RANK_SIZE=%s in the environment, but this run has %d device%s: set '
                          'RANK_SIZE=%d%s' % (size, world_size, 's' if world_size > 1 else '',
                                              world_size, ' and unset RANK_TABLE_FILE'
                                              if world_size == 1 else ''))


def session_config(rt, local_rank=None, world_size=1):
    """The session ConfigProto for a Runtime; every session of every script is made with it.

    On the NPU it imports npu_bridge first - the import loads the adapter's library, without
    which TensorFlow drops the NpuOptimizer below silently and runs on the host - and finishes
    the config with the adapter's own npu_config_proto (soft placement, remapping, memory
    optimisation and JIT as the adapter needs them). local_rank pins one GPU per process for
    Horovod; world_size is the number of ranks of the run (check_rank_size).
    """
    tf = cli.import_tensorflow()
    from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig
    config = tf.ConfigProto(allow_soft_placement=True)
    rewrite = config.graph_options.rewrite_options
    if rt.device == 'npu':
        check_rank_size(world_size)
        from npu_bridge.npu_init import npu_config_proto
        npu = rewrite.custom_optimizers.add()
        npu.name = 'NpuOptimizer'
        npu.parameter_map['use_off_line'].b = True  # execute on the NPU, not the host
        npu.parameter_map['precision_mode'].s = tf.compat.as_bytes(rt.npu_precision_mode)
        return npu_config_proto(config)
    elif rt.device == 'gpu':
        config.gpu_options.allow_growth = True
        if local_rank is not None:
            config.gpu_options.visible_device_list = str(local_rank)
        if rt.precision == 'mixed':
            rewrite.auto_mixed_precision = RewriterConfig.ON
    return config


def hccl_world(env=None):
    """(rank, size, local rank, local size) of this process in an HCCL job, from what the launcher
    exported: RANK_ID, RANK_SIZE, ASCEND_DEVICE_ID (or DEVICE_ID), JOB_ID and the rank table.

    Not from hccl.manage.api: its get_rank_id/get_rank_size ask libhccl, which answers only after
    GE has initialised collective communication (at the first device run, or initialize_system
    in a session), and raises before. NPUDistributedOptimizer itself reads RANK_SIZE from the
    environment. Every inconsistency is a one-line ConfigError here instead of an HCCL failure
    later; the local rank and size are this device's place on its server in the table.
    """
    import json
    env = os.environ if env is None else env
    missing = [k for k in HCCL_ENV if not env.get(k)]
    if not any(env.get(k) for k in DEVICE_ID_ENV):
        missing.append(' or '.join(DEVICE_ID_ENV))
    if missing:
        raise ConfigError('--distributed=hccl needs %s in the environment (see '
                          'scripts/modelzoo/train_full_8p.sh)' % ', '.join(missing))
    path = env['RANK_TABLE_FILE']
    try:
        with open(path) as f:
            servers = json.load(f)['server_list']
        devices = [[str(d['rank_id']) for d in s['device']] for s in servers]
    except OSError as e:
        raise ConfigError('RANK_TABLE_FILE=%s: %s' % (path, e.strerror or e))
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError('RANK_TABLE_FILE=%s: not an HCCL rank table (%s: %s)'
                          % (path, type(e).__name__, e))
    for name in ('RANK_ID', 'RANK_SIZE'):
        if not env[name].isdigit():
            raise ConfigError('%s=%s is not a number' % (name, env[name]))
    rank, size = int(env['RANK_ID']), int(env['RANK_SIZE'])
    listed = sum(len(d) for d in devices)
    if size != listed:
        raise ConfigError('RANK_SIZE=%d but %s lists %d devices' % (size, path, listed))
    found = [(s, i) for s, server in enumerate(devices) for i, r in enumerate(server)
             if r == str(rank)]
    if not found:
        raise ConfigError('RANK_ID=%d is not in %s' % (rank, path))
    # ASCEND_DEVICE_ID is the logical device: in a container it need not equal the table's
    # physical device_id, so the two are not compared.
    server, local_rank = found[0]
    if size > 1 and not env.get(JOB_ID_ENV):
        raise ConfigError('%s is not set: npu_bridge\'s NPUDistributedOptimizer needs it for more '
                          'than one device (it fails building the graph otherwise); '
                          'scripts/modelzoo/train_full_8p.sh sets it' % JOB_ID_ENV)
    return rank, size, local_rank, len(devices[server])


class Distribution(object):
    """Data-parallel world: rank/size, gradient averaging, initial broadcast, chief-only writes.

    backend 'none' is a world of one. 'horovod' uses Horovod (GPU/CPU, gloo or MPI); 'hccl' uses
    Huawei's collective library through npu_bridge, one process per Ascend device. local_size is
    the number of ranks on this machine (they share its cores).
    """

    def __init__(self, backend='none'):
        if backend not in BACKENDS:
            raise ConfigError('distributed backend must be one of %s, got %r' % (BACKENDS, backend))
        self.backend = backend
        self.rank, self.size, self.local_rank, self.local_size = 0, 1, 0, 1
        if backend == 'horovod':
            cli.import_tensorflow()  # quietly, before Horovod imports it
            import horovod.tensorflow as hvd
            hvd.init()
            self._hvd = hvd
            self.rank, self.size = hvd.rank(), hvd.size()
            self.local_rank, self.local_size = hvd.local_rank(), hvd.local_size()
        elif backend == 'hccl':
            self.rank, self.size, self.local_rank, self.local_size = hccl_world()

    def cores(self):
        """CPU cores for this process: those it may run on (affinity, cgroup-free count), shared
        evenly by the ranks on this machine (8 devices on a 24-vCPU host: 3 each)."""
        usable = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (
            os.cpu_count() or 1)
        return max(1, usable // self.local_size)

    @property
    def is_chief(self):
        """Only rank 0 writes checkpoints, samples, summaries and parseable logs."""
        return self.rank == 0

    def shard(self, items):
        """This rank's share of a list: every item goes to exactly one rank."""
        return items[self.rank::self.size]

    def broadcast_op(self):
        """Copy rank 0's initial variables to every rank; run once after initialisation."""
        tf = cli.import_tensorflow()
        if self.backend == 'horovod':
            return self._hvd.broadcast_global_variables(0)
        if self.backend == 'hccl' and self.size > 1:
            from npu_bridge.hccl import hccl_ops
            variables = [v for v in tf.global_variables() if v.dtype.base_dtype.is_floating]
            # broadcast() returns new tensors; without the assign nothing would change.
            return tf.group(*[tf.assign(v, hccl_ops.broadcast([v], 0)[0]) for v in variables])
        return tf.no_op()

    def sum_op(self, tensor):
        """The element-wise sum of `tensor` over all ranks (itself in a world of one): a float32
        tensor, the one type both Horovod and HCCL's HcomAllReduce take."""
        if self.backend == 'horovod' and self.size > 1:
            return self._hvd.allreduce(tensor, op=self._hvd.Sum)
        if self.backend == 'hccl' and self.size > 1:
            from npu_bridge.hccl import hccl_ops
            return hccl_ops.allreduce(tensor, 'sum')
        return tensor


def wrap_optimizer(optimizer, rt, dist=None):
    """The device's optimizer wrapping, innermost first: gradient averaging, then loss scaling.

    Averaging inside the loss scaling means every rank sees the same (averaged) gradients, so all
    ranks agree on overflow, skip the same steps and keep the same loss scale.
    """
    tf = cli.import_tensorflow()
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
