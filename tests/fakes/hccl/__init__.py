"""Test double of CANN's hccl Python package (see tests/fakes/README.md)."""
