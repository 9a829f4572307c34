"""Double of `npu_bridge.estimator.npu.npu_loss_scale_manager` (r1.6.0:
tf_adapter/python/npu_bridge/estimator/npu/npu_loss_scale_manager.py).

ExponentialUpdateLossScaleManager creates its state with variable_scope.variable at whatever
scope the caller is in - at the root: `loss_scale`, `good_steps`, `bad_steps`, the names an NPU
checkpoint holds (r1.7.0 subclasses TF contrib's manager, which creates the same three). The
update rule is the real one: x incr_ratio after incr_every_n_steps finite steps (unless that
would pass 3.4e38 / incr_ratio), x decr_ratio (never below 1) after decr_every_n_nan_or_inf
overflowing ones; either change resets both counters.
"""
import tensorflow.compat.v1 as tf

FLOAT32_MAX = 3.4e+38


class FixedLossScaleManager(object):
    def __init__(self, loss_scale, enable_overflow_check=True):
        if loss_scale < 1:
            raise ValueError("loss scale must be at least 1.")
        self._loss_scale = tf.convert_to_tensor(loss_scale, dtype=tf.float32, name="loss_scale")
        self._enable_overflow_check = enable_overflow_check

    def get_loss_scale(self):
        return self._loss_scale

    def update_loss_scale(self, finite_grads):
        del finite_grads
        return tf.no_op()

    def get_enable_overflow_check(self):
        return self._enable_overflow_check


class ExponentialUpdateLossScaleManager(object):
    def __init__(self, init_loss_scale, incr_every_n_steps, decr_every_n_nan_or_inf=2,
                 incr_ratio=2, decr_ratio=0.8):
        self._incr_every_n_steps = incr_every_n_steps
        self._decr_every_n_nan_or_inf = decr_every_n_nan_or_inf
        self._incr_ratio = incr_ratio
        self._decr_ratio = decr_ratio
        self._loss_scale = tf.Variable(tf.convert_to_tensor(init_loss_scale, tf.float32),
                                       name="loss_scale", dtype=tf.float32, trainable=False)
        self._num_good_steps = tf.Variable(0, name="good_steps", dtype=tf.int32,
                                           trainable=False)
        self._num_bad_steps = tf.Variable(0, name="bad_steps", dtype=tf.int32, trainable=False)

    def _reset_stats(self):
        return tf.group(tf.assign(self._num_good_steps, 0), tf.assign(self._num_bad_steps, 0))

    def get_loss_scale(self):
        return self._loss_scale

    def update_loss_scale(self, finite_grads):
        def update_if_finite_grads():
            def incr_loss_scale():
                new_scale = tf.cond(tf.less(self._loss_scale, FLOAT32_MAX / self._incr_ratio),
                                    lambda: self._loss_scale * self._incr_ratio,
                                    lambda: self._loss_scale)
                return tf.group(tf.assign(self._loss_scale, new_scale), self._reset_stats())
            return tf.cond(self._num_good_steps + 1 >= self._incr_every_n_steps,
                           incr_loss_scale,
                           lambda: tf.assign_add(self._num_good_steps, 1).op)

        def update_if_not_finite_grads():
            def decr_loss_scale():
                return tf.group(tf.assign(self._loss_scale,
                                          tf.maximum(1., self._loss_scale * self._decr_ratio)),
                                self._reset_stats())

            def just_update_steps():
                return tf.group(tf.assign_add(self._num_bad_steps, 1),
                                tf.assign(self._num_good_steps, 0))
            return tf.cond(self._num_bad_steps + 1 >= self._decr_every_n_nan_or_inf,
                           decr_loss_scale, just_update_steps)

        return tf.cond(finite_grads, update_if_finite_grads, update_if_not_finite_grads)
