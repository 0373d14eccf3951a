"""Runnable example plugins and hosts (echo, kv, counter) for the demo, docs and tests."""

from .._protos import (
    counter_pb2,
    counter_pb2_grpc,
    echo_pb2,
    echo_pb2_grpc,
    kv_pb2,
    kv_pb2_grpc,
)

__all__ = [
    "counter_pb2",
    "counter_pb2_grpc",
    "echo_pb2",
    "echo_pb2_grpc",
    "kv_pb2",
    "kv_pb2_grpc",
]
