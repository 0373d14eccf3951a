"""Runnable example plugins and hosts (echo, kv, counter) for the demo, docs and tests.

The generated modules (``echo_pb2``, ``kv_pb2_grpc``, ...) are importable from here;
each is loaded on first use, so running one example does not import every proto.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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


def __getattr__(name: str) -> ModuleType:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f".._protos.{name}", __package__)
    globals()[name] = module  # later lookups skip this function
    return module


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
