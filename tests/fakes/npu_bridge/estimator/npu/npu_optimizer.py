"""Double of `npu_bridge.estimator.npu.npu_optimizer` (r1.6.0:
tf_adapter/python/npu_bridge/estimator/npu/npu_optimizer.py): NPUDistributedOptimizer and the
allreduce() it averages with.

As in the real file: compute_gradients returns the plain gradients when RANK_SIZE is unset or
<= 1; otherwise each gradient goes through allreduce(grad, True), an HCCL sum divided by
NPUBasics("").size() - which needs JOB_ID (see npu_common.py) - under the name scope
"<name>_Allreduce"; the name defaults to "Distributed<optimizer class>".
"""
import os

import tensorflow.compat.v1 as tf

from npu_bridge.estimator.npu.npu_common import NPUBasics
from npu_bridge.hccl import hccl_ops


def allreduce(tensor, average=True):
    size = NPUBasics("").size()
    if isinstance(tensor, tf.IndexedSlices):
        raise NotImplementedError('the double does not model IndexedSlices (allgather)')
    summed = hccl_ops.allreduce(tensor, "sum")
    return tf.div(summed, tf.cast(size, dtype=tensor.dtype)) if average else summed


class NPUDistributedOptimizer(tf.train.Optimizer):
    def __init__(self, optimizer, is_weight_update_sharding=False, name=None):
        if is_weight_update_sharding:
            raise NotImplementedError('the double does not model weight-update sharding')
        if name is None:
            name = "Distributed{}".format(type(optimizer).__name__)
        self._optimizer = optimizer
        self._is_weight_update_sharding = is_weight_update_sharding
        super(NPUDistributedOptimizer, self).__init__(name=name, use_locking=False)

    def compute_gradients(self, *args, **kwargs):
        gradients = self._optimizer.compute_gradients(*args, **kwargs)
        rank_size = os.getenv('RANK_SIZE')
        if rank_size is None or int(rank_size) <= 1:
            return gradients
        averaged = []
        with tf.name_scope(self._name + "_Allreduce"):
            for grad, var in gradients:
                averaged.append((allreduce(grad, True) if grad is not None else None, var))
        return averaged

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        return self._optimizer.apply_gradients(grads_and_vars, global_step, name)

    def get_slot(self, *args, **kwargs):
        return self._optimizer.get_slot(*args, **kwargs)

    def get_slot_names(self, *args, **kwargs):
        return self._optimizer.get_slot_names(*args, **kwargs)

    def variables(self, *args, **kwargs):
        return self._optimizer.variables(*args, **kwargs)


def npu_distributed_optimizer_wrapper(optimizer):
    """Newer CANN's functional form; here the class above."""
    return NPUDistributedOptimizer(optimizer)
