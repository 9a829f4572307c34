"""Fake loss-scale managers with the real update rule (the adapter subclasses TF contrib's)."""
import tensorflow.compat.v1 as tf

MAX_FLOAT32 = 3.4e38


class FixedLossScaleManager(object):
    def __init__(self, loss_scale):
        if loss_scale < 1:
            raise ValueError('loss scale must be at least 1.')
        self._loss_scale = tf.constant(loss_scale, dtype=tf.float32, name='loss_scale')

    def get_loss_scale(self):
        return self._loss_scale

    def update_loss_scale(self, finite_grads):
        del finite_grads
        return tf.no_op()


class ExponentialUpdateLossScaleManager(object):
    """Multiply the scale by incr_ratio after incr_every_n_steps finite steps, by decr_ratio after
    decr_every_n_nan_or_inf overflowing ones (never below 1)."""

    def __init__(self, init_loss_scale, incr_every_n_steps, decr_every_n_nan_or_inf=2,
                 incr_ratio=2, decr_ratio=0.8):
        self._incr_every_n_steps = incr_every_n_steps
        self._decr_every_n_nan_or_inf = decr_every_n_nan_or_inf
        self._incr_ratio = float(incr_ratio)
        self._decr_ratio = float(decr_ratio)
        with tf.variable_scope('loss_scale_manager', reuse=tf.AUTO_REUSE):
            self._loss_scale = tf.get_variable(
                'loss_scale', dtype=tf.float32, trainable=False,
                initializer=tf.constant(float(init_loss_scale)))
            self._num_good_steps = tf.get_variable(
                'good_steps', dtype=tf.int32, trainable=False, initializer=tf.constant(0))
            self._num_bad_steps = tf.get_variable(
                'bad_steps', dtype=tf.int32, trainable=False, initializer=tf.constant(0))

    def get_loss_scale(self):
        return self._loss_scale

    def _reset_stats(self):
        return tf.group(tf.assign(self._num_good_steps, 0), tf.assign(self._num_bad_steps, 0))

    def update_loss_scale(self, finite_grads):
        def if_finite():
            grow = tf.less(self._loss_scale, MAX_FLOAT32 / self._incr_ratio)
            return tf.cond(
                self._num_good_steps + 1 >= self._incr_every_n_steps,
                lambda: tf.group(tf.assign(self._loss_scale, tf.where(
                    grow, self._loss_scale * self._incr_ratio, self._loss_scale)),
                    self._reset_stats()),
                lambda: tf.assign_add(self._num_good_steps, 1).op)

        def if_overflow():
            return tf.cond(
                self._num_bad_steps + 1 >= self._decr_every_n_nan_or_inf,
                lambda: tf.group(tf.assign(self._loss_scale, tf.maximum(
                    1.0, self._loss_scale * self._decr_ratio)), self._reset_stats()),
                lambda: tf.group(tf.assign_add(self._num_bad_steps, 1),
                                 tf.assign(self._num_good_steps, 0)))

        return tf.cond(finite_grads, if_finite, if_overflow)
