"""Double of `npu_bridge.helper.helper` (r1.6.0: tf_adapter/python/npu_bridge/helper/helper.py).

The real module's import is the one that matters on Ascend: it runs
`tensorflow.load_op_library(<npu_bridge>/_tf_adapter.so)`, which registers GeOp, the NpuOptimizer
graph pass, the Hcom* collectives and the NPU float-status ops with TensorFlow. A process that
never imports npu_bridge has none of them: TF 1.15's meta optimizer skips the unknown custom
optimizer `NpuOptimizer` with only a VLOG(2) line and the whole graph runs on the host CPU.

Here the "library" is a Python object with the generated-op functions the project's path uses
(get_gen_ops()), and LOADED records that the load happened in this process, so a test can check
that every NPU session was created after it.
"""
import tensorflow.compat.v1 as tf

from hccl.manage import api as _hccl_api

version = 'v1.15.0'

# Input dtypes HcomAllReduce accepts (r1.6.0: tf_adapter/ops/hccl_ops.cc, REGISTER_OP attr T).
HCOM_ALLREDUCE_TYPES = (tf.int8, tf.int16, tf.int32, tf.float16, tf.float32)
REDUCTIONS = ('min', 'max', 'prod', 'sum')
# r1.6.0: NpuAllocFloatStatus's output is Vector(1) (tf_adapter/ops/npu_mixed_precesion_ops.cc)
FLOAT_STATUS_SHAPE = [1]


class _GenOps(object):
    """The generated op wrappers of `_tf_adapter.so` that the project's path reaches.

    The double's world: every rank holds this process's values, so a sum over ranks is the
    value times the rank table's size and a broadcast returns the input.
    """

    def hcom_all_reduce(self, input, reduction, fusion, fusion_id, group, name=None):
        tensor = tf.convert_to_tensor(input)  # a list of one tensor packs to [1, ...], as in TF
        if tensor.dtype.base_dtype not in HCOM_ALLREDUCE_TYPES:
            raise TypeError("Value passed to parameter 'input' has DataType %s not in list of "
                            "allowed values: int8, int16, int32, float16, float32"
                            % tensor.dtype.name)
        if reduction not in REDUCTIONS:
            raise ValueError('reduction must be one of %s, got %r' % (REDUCTIONS, reduction))
        if reduction == 'sum':
            tensor = tensor * tf.cast(_hccl_api._world_size(), tensor.dtype)
        return tf.identity(tensor, name=name or 'HcomAllReduce')

    def hcom_broadcast(self, input, fusion, fusion_id, group, root_rank, name=None):
        if not 0 <= root_rank < _hccl_api._world_size():
            raise ValueError('root_rank %d outside the world of %d'
                             % (root_rank, _hccl_api._world_size()))
        return [tf.identity(t, name=name or 'HcomBroadcast') for t in input]

    def npu_init(self, name=None):
        return _state_op(True, name or 'NPUInit')

    def npu_shutdown(self, name=None):
        return _state_op(False, name or 'NPUShutdown')

    def npu_alloc_float_status(self, name=None):
        return tf.zeros(FLOAT_STATUS_SHAPE, tf.float32, name=name or 'NpuAllocFloatStatus')

    def npu_get_float_status(self, input_float, name=None):
        """The device's overflow register as seen after the ops this one depends on.

        The real op reads the register that the AI cores set on any float overflow since the last
        clear; callers create it inside control_dependencies(gradients). The double looks at
        those control inputs: 1.0 if any of their float outputs holds inf or NaN, else 0.0.
        """
        graph = tf.get_default_graph()
        watched = [t for op in graph._current_control_dependencies() for t in op.outputs
                   if t.dtype.is_floating]
        flags = [tf.reduce_any(tf.logical_not(tf.is_finite(t))) for t in watched]
        overflow = tf.cast(tf.reduce_any(tf.stack(flags)) if flags else False, tf.float32)
        return tf.identity(input_float + overflow, name=name or 'NpuGetFloatStatus')

    def npu_clear_float_status(self, float_status, name=None):
        return tf.zeros_like(float_status, name=name or 'NpuClearFloatStatus')


def _state_op(initialised, name):
    """An op that, when a session runs it, turns HCCL's initialised state on or off."""
    def flip():
        _hccl_api._set_initialised(initialised)
        return 0
    return tf.group(tf.py_func(flip, [], tf.int64, stateful=True), name=name)


npu_bridge_handle = _GenOps()
LOADED = True


def get_gen_ops():
    return npu_bridge_handle
