"""Runnable example plugins and hosts (echo, kv) used by the demo, the docs and the tests."""

from .._protos import echo_pb2, echo_pb2_grpc, kv_pb2, kv_pb2_grpc

__all__ = ["echo_pb2", "echo_pb2_grpc", "kv_pb2", "kv_pb2_grpc"]
