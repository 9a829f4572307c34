"""Test double of Huawei's npu_bridge (see tests/fakes/README.md). Never ship or install this.

Like the real package (Ascend/tensorflow r1.6.0, tf_adapter/python/npu_bridge/__init__.py),
importing it runs helper/helper.py, the step that loads `_tf_adapter.so`, and imports hccl_ops.
"""
from npu_bridge.helper import helper  # noqa: F401  (the library load: see helper.py)
from npu_bridge.hccl import hccl_ops  # noqa: F401
