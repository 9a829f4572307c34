"""Double of `npu_bridge.npu_init` (r1.6.0: tf_adapter/python/npu_bridge/npu_init.py): the
ModelZoo star-import surface the project reaches, npu_config_proto as the real one sets it, and
init_resource in the real order (initialize_system run in a session, then the rank queries)."""
import tensorflow.compat.v1 as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig

from hccl.manage.api import (get_local_rank_id, get_local_rank_size,  # noqa: F401
                             get_rank_id, get_rank_size)
from npu_bridge.estimator import npu_ops
from npu_bridge.estimator.npu.npu_loss_scale_manager import (  # noqa: F401
    ExponentialUpdateLossScaleManager, FixedLossScaleManager)
from npu_bridge.estimator.npu.npu_loss_scale_optimizer import NPULossScaleOptimizer  # noqa: F401
from npu_bridge.estimator.npu.npu_optimizer import (  # noqa: F401
    NPUDistributedOptimizer, npu_distributed_optimizer_wrapper)
from npu_bridge.hccl import hccl_ops  # noqa: F401


def npu_config_proto(config_proto=None):
    """Find or add the NpuOptimizer custom optimizer (its parameters are kept), then: soft
    placement on, device placement logging off, remapping, memory optimisation and XLA JIT off."""
    if not isinstance(config_proto, config_pb2.ConfigProto):
        config_proto = config_pb2.ConfigProto()
    rewrite = config_proto.graph_options.rewrite_options
    if not any(c.name == 'NpuOptimizer' for c in rewrite.custom_optimizers):
        rewrite.custom_optimizers.add().name = 'NpuOptimizer'
    config_proto.allow_soft_placement = True
    config_proto.log_device_placement = False
    rewrite.remapping = RewriterConfig.OFF
    rewrite.memory_optimization = RewriterConfig.OFF
    config_proto.graph_options.optimizer_options.global_jit_level = config_pb2.OptimizerOptions.OFF
    return config_proto


def init_resource(config=None):
    """(session, shutdown op): the system initialised in its own session, then rank queries."""
    config = npu_config_proto(config)
    npu_init, npu_shutdown = npu_ops.initialize_system(), npu_ops.shutdown_system()
    sess = tf.Session(config=config)
    sess.run(npu_init)
    get_rank_id(), get_local_rank_id(), get_rank_size()
    return sess, npu_shutdown


def shutdown_resource(sess, npu_shutdown):
    sess.run(npu_shutdown)
