"""Double of `npu_bridge.estimator.npu_ops` (r1.6.0: tf_adapter/python/npu_bridge/estimator/
npu_ops.py): initialize_system() / shutdown_system() return the NPUInit / NPUShutdown ops that
open and close the device system (and with it HCCL) when a session runs them."""
from npu_bridge.helper import helper

gen_npu_ops = helper.get_gen_ops()


def initialize_system(name=None):
    return gen_npu_ops.npu_init(name=name)


def shutdown_system(name=None):
    return gen_npu_ops.npu_shutdown(name=name)
