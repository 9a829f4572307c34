"""Fake NPULossScaleOptimizer: scale the loss, unscale the gradients, skip non-finite steps.

The real one reads the NPU's float-status register; here the gradients are checked with
is_finite. With is_distributed=True the overflow flag goes through an HCCL allreduce so that all
ranks skip the same steps - the reason the wrapping order matters.
"""
import tensorflow.compat.v1 as tf

from npu_bridge.hccl import hccl_ops


class NPULossScaleOptimizer(tf.train.Optimizer):
    def __init__(self, opt, loss_scale_manager, is_distributed=False):
        self._opt = opt
        self._loss_scale_manager = loss_scale_manager
        self._is_distributed = is_distributed
        super(NPULossScaleOptimizer, self).__init__(use_locking=False,
                                                    name='NPULossScaleOptimizer')

    def compute_gradients(self, loss, var_list=None, **kwargs):
        scale = self._loss_scale_manager.get_loss_scale()
        grads = self._opt.compute_gradients(loss * tf.cast(scale, loss.dtype), var_list, **kwargs)
        return [(None if g is None else g / tf.cast(scale, g.dtype), v) for g, v in grads]

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        grads_and_vars = list(grads_and_vars)
        overflow = tf.add_n([tf.reduce_sum(tf.cast(tf.logical_not(tf.is_finite(g)), tf.float32))
                             for g, _ in grads_and_vars if g is not None])
        if self._is_distributed:
            overflow = hccl_ops.allreduce([overflow], 'sum', fusion=0)[0]
        finite = tf.equal(overflow, 0.0, name='overflow_status_reduce_all')
        update = tf.cond(finite,
                         lambda: self._opt.apply_gradients(grads_and_vars, global_step, name),
                         tf.no_op)
        return tf.group(update, self._loss_scale_manager.update_loss_scale(finite))

    def get_slot(self, *args, **kwargs):
        return self._opt.get_slot(*args, **kwargs)

    def get_slot_names(self, *args, **kwargs):
        return self._opt.get_slot_names(*args, **kwargs)

    def variables(self, *args, **kwargs):
        return self._opt.variables(*args, **kwargs)
