"""Fake `npu_bridge.hccl.hccl_ops`: collectives of a world whose ranks all hold this process's
values."""
import tensorflow.compat.v1 as tf

from hccl.manage.api import get_rank_size

REDUCTIONS = ('sum', 'prod', 'max', 'min')


def allreduce(tensor, reduction, fusion=1, fusion_id=-1, group="hccl_world_group"):
    """Every rank contributes `tensor`: sum is size * tensor, the others are the tensor itself."""
    if reduction not in REDUCTIONS:
        raise ValueError('reduction must be one of %s, got %r' % (REDUCTIONS, reduction))
    tensor = tf.convert_to_tensor(tensor)
    if reduction == 'sum':
        tensor = tensor * tf.cast(get_rank_size(), tensor.dtype)
    return tf.identity(tensor, name='HcomAllReduce')


def broadcast(tensor_list, root_rank, fusion=2, fusion_id=0, group="hccl_world_group"):
    """New tensors holding the root's values (here: this process's); the inputs are not changed."""
    if not 0 <= root_rank < get_rank_size():
        raise ValueError('root_rank %d outside the world of %d' % (root_rank, get_rank_size()))
    return [tf.identity(t, name='HcomBroadcast') for t in tensor_list]
