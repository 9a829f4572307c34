"""Double of `npu_bridge.estimator.npu.npu_loss_scale_optimizer.NPULossScaleOptimizer` (r1.6.0:
tf_adapter/python/npu_bridge/estimator/npu/npu_loss_scale_optimizer.py).

What the real class does, and this one too:
- its name is "NPULossScaleOptimizer" + type(optimizer).__name__ where `optimizer` is the TF
  module it imported, so "NPULossScaleOptimizermodule" (a quirk of the real file);
- compute_gradients scales the loss, allocates the float-status tensor ([1] in r1.6.0) under
  that name scope, and returns the gradients times 1 / loss scale;
- apply_gradients reads and clears the float status after the gradients (control
  dependencies), sums the status over ranks with hccl_ops.allreduce([status], "sum", fusion=0)
  when is_distributed, and applies the wrapped optimizer inside control_flow_ops.cond(finite,
  apply, no_op) - so Adam's beta1_power / beta2_power are created under the cond's name scope
  and an NPU checkpoint holds `cond/beta1_power`, `cond/beta2_power`;
- the loss-scale manager's update runs beside it.
One deviation: on the device npu_get_float_status writes the overflow flags into the
allocated buffer in place and the real code compares that buffer with the cleared copy; a CPU
graph has no in-place write, so the double compares get's output, which holds the same value.
"""
import tensorflow.compat.v1 as tf
from tensorflow.python.training import optimizer

from npu_bridge.estimator.npu.npu_loss_scale_manager import FixedLossScaleManager
from npu_bridge.hccl import hccl_ops
from npu_bridge.helper import helper

gen_npu_ops = helper.get_gen_ops()


class NPULossScaleOptimizer(optimizer.Optimizer):
    def __init__(self, opt, loss_scale_manager, is_distributed=False):
        self._opt = opt
        self._loss_scale_manager = loss_scale_manager
        self._float_status = tf.constant([0.0], dtype=tf.float32)
        self._is_distributed = is_distributed
        self._name = "NPULossScaleOptimizer{}".format(type(optimizer).__name__)
        super(NPULossScaleOptimizer, self).__init__(name=self._name, use_locking=False)

    def compute_gradients(self, loss, var_list=None, gate_gradients=optimizer.Optimizer.GATE_OP,
                          aggregation_method=None, colocate_gradients_with_ops=False,
                          grad_loss=None):
        loss_scale = self._loss_scale_manager.get_loss_scale()
        loss_val = loss() if callable(loss) else loss
        scaled_loss = loss_val * tf.cast(loss_scale, loss_val.dtype.base_dtype)
        if self._enable_overflow_check():
            with tf.name_scope(self._name):
                self._float_status = gen_npu_ops.npu_alloc_float_status()
        grads_and_vars = self._opt.compute_gradients(
            scaled_loss, var_list=var_list, gate_gradients=gate_gradients,
            aggregation_method=aggregation_method,
            colocate_gradients_with_ops=colocate_gradients_with_ops, grad_loss=grad_loss)
        return self._down_scale(grads_and_vars, loss_scale)

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        if self._enable_overflow_check():
            grads = [g for g, _ in grads_and_vars if g is not None]
            with tf.get_default_graph().control_dependencies(grads):
                local_float_status = gen_npu_ops.npu_get_float_status(self._float_status)
                cleared_float_status = gen_npu_ops.npu_clear_float_status(local_float_status)
            if self._is_distributed:
                with tf.get_default_graph().control_dependencies([local_float_status]):
                    aggregated = hccl_ops.allreduce([local_float_status], "sum", fusion=0)
                    is_overall_finite = tf.reduce_all(
                        tf.equal(aggregated, cleared_float_status),
                        name="overflow_status_reduce_all")
            else:
                is_overall_finite = tf.reduce_all(
                    tf.equal(local_float_status, cleared_float_status),
                    name="overflow_status_reduce_all")
        else:
            is_overall_finite = tf.constant(True, dtype=tf.bool)

        def true_apply_gradients_fn():
            return self._opt.apply_gradients(grads_and_vars, global_step, name)

        update_vars = tf.cond(is_overall_finite, true_apply_gradients_fn, tf.no_op)
        return tf.group(update_vars,
                        self._loss_scale_manager.update_loss_scale(is_overall_finite))

    def _down_scale(self, grads_vars, loss_scale):
        inv_loss_scale = tf.reciprocal(loss_scale)
        return [(g * tf.cast(inv_loss_scale, g.dtype.base_dtype) if g is not None else g, v)
                for g, v in grads_vars]

    def _enable_overflow_check(self):
        if isinstance(self._loss_scale_manager, FixedLossScaleManager):
            return self._loss_scale_manager.get_enable_overflow_check()
        return True
