"""Test double of Huawei's npu_bridge (see tests/fakes/README.md). Never ship or install this."""
