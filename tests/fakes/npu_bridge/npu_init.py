"""Fake `npu_bridge.npu_init`: the ModelZoo star-import surface."""
import tensorflow.compat.v1 as tf
from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig

from hccl.manage.api import get_local_rank_id, get_rank_id, get_rank_size  # noqa: F401
from npu_bridge.estimator.npu.npu_loss_scale_manager import (  # noqa: F401
    ExponentialUpdateLossScaleManager, FixedLossScaleManager)
from npu_bridge.estimator.npu.npu_loss_scale_optimizer import NPULossScaleOptimizer  # noqa: F401
from npu_bridge.estimator.npu.npu_optimizer import (  # noqa: F401
    NPUDistributedOptimizer, npu_distributed_optimizer_wrapper)
from npu_bridge.hccl import hccl_ops  # noqa: F401


def npu_config_proto(config_proto=None):
    """Add NpuOptimizer and turn remapping, memory optimisation and JIT off (as newer CANN does)."""
    config = config_proto or tf.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    if not any(c.name == 'NpuOptimizer' for c in rewrite.custom_optimizers):
        rewrite.custom_optimizers.add().name = 'NpuOptimizer'
    rewrite.remapping = RewriterConfig.OFF
    rewrite.memory_optimization = RewriterConfig.OFF
    config.graph_options.optimizer_options.global_jit_level = tf.OptimizerOptions.OFF
    return config
