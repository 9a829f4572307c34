"""Fake NPUDistributedOptimizer: HCCL-sum the gradients and divide by the rank size.

Like the real one it reads RANK_SIZE from the environment and does nothing extra when it is <= 1.
"""
import os

import tensorflow.compat.v1 as tf

from npu_bridge.hccl import hccl_ops


class NPUDistributedOptimizer(tf.train.Optimizer):
    def __init__(self, tf_optimizer, is_weight_update_sharding=False, name=None):
        if is_weight_update_sharding:
            raise NotImplementedError('the test double does not model weight-update sharding')
        self._optimizer = tf_optimizer
        self._is_weight_update_sharding = is_weight_update_sharding
        super(NPUDistributedOptimizer, self).__init__(
            use_locking=False, name=name or 'Distributed' + type(tf_optimizer).__name__)

    def compute_gradients(self, *args, **kwargs):
        grads = self._optimizer.compute_gradients(*args, **kwargs)
        size = int(os.environ.get('RANK_SIZE', '1'))
        if size <= 1:
            return grads
        with tf.name_scope(self._name + '_Allreduce'):
            return [(None if g is None else hccl_ops.allreduce(g, 'sum') / tf.cast(size, g.dtype),
                     v) for g, v in grads]

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        return self._optimizer.apply_gradients(grads_and_vars, global_step, name)

    def get_slot(self, *args, **kwargs):
        return self._optimizer.get_slot(*args, **kwargs)

    def get_slot_names(self, *args, **kwargs):
        return self._optimizer.get_slot_names(*args, **kwargs)

    def variables(self, *args, **kwargs):
        return self._optimizer.variables(*args, **kwargs)


def npu_distributed_optimizer_wrapper(optimizer):
    return NPUDistributedOptimizer(optimizer)
