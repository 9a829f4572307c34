"""Double of `npu_bridge.hccl.hccl_ops` (r1.6.0: tf_adapter/python/npu_bridge/hccl/hccl_ops.py):
thin wrappers of the library's Hcom* ops, with the real signatures."""
from npu_bridge.helper import helper

gen_hccl_ops = helper.get_gen_ops()


def allreduce(tensor, reduction, fusion=1, fusion_id=-1, group="hccl_world_group"):
    return gen_hccl_ops.hcom_all_reduce(input=tensor, reduction=reduction, fusion=fusion,
                                        fusion_id=fusion_id, group=group)


def broadcast(tensor, root_rank, fusion=2, fusion_id=0, group="hccl_world_group"):
    """`tensor` is a list; returns new tensors (the inputs are not changed)."""
    return gen_hccl_ops.hcom_broadcast(input=tensor, fusion=fusion, fusion_id=fusion_id,
                                       group=group, root_rank=root_rank)
