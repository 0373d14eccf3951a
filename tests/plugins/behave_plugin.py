"""A test plugin with methods that misbehave on request: print, sleep, log, spawn.

Service ``test.Behave`` takes and returns raw bytes (no generated code).
"""

from __future__ import annotations

import logging
import os
import sys
import time

import grpc

from pyvider_rpcplugin_sync import run_plugin

log = logging.getLogger("__main__")


def _print(request: bytes, context: grpc.ServicerContext) -> bytes:
    # Through sys.stdout, straight to fd 1 (like C code would), and to stderr.
    print(request.decode(), flush=True)
    os.write(1, b"fd1:" + request + b"\n")
    print(request.decode(), file=sys.stderr, flush=True)
    return request


def _flood(request: bytes, context: grpc.ServicerContext) -> bytes:
    size = int(request)
    block = b"x" * 65536 + b"\n"
    for _ in range(size // len(block) + 1):
        os.write(1, block)
        sys.stderr.write("e" * 1000 + "\n")
    return b"done"


def _sleep(request: bytes, context: grpc.ServicerContext) -> bytes:
    time.sleep(float(request))
    return request


def _log(request: bytes, context: grpc.ServicerContext) -> bytes:
    log.warning("app says %s", request.decode(), extra={"answer": 42})
    return request


def register(server: grpc.Server) -> None:
    if os.environ.get("PRINT_IN_REGISTER"):
        print("a stray print before the handshake")
    methods = {"Print": _print, "Flood": _flood, "Sleep": _sleep, "Log": _log}
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Behave",
                {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in methods.items()},
            ),
        )
    )


if __name__ == "__main__":
    raise SystemExit(run_plugin(register, max_workers=int(os.environ.get("WORKERS", "16"))))
