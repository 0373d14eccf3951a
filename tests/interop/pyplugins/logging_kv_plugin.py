"""A KV plugin (go-plugin's examples/grpc protocol) that logs and fails on request.

For the log-level cells with go-plugin hosts: ``Put("log:<level>", message)`` logs
``message`` at that level (trace, debug, info, warn, error) through this script's
logger, which the library forwards as hclog lines; ``Get("raise")`` raises in the
handler, ``Put("thread-raise", message)`` raises in a thread of its own (both reach
the host as ERROR records with the Python traceback); ``Get("block")`` returns only
when its call is cancelled (as a long computation that watches its context would),
``Get("hang")`` never returns (one that does not);
``Put("print:stdout", text)`` and ``Put("print:stderr", text)`` print ``text`` to
``sys.stdout`` or ``sys.stderr``, which reach the host over ``StreamStdio``. Other keys
store and read values.
"""

from __future__ import annotations

import logging
import sys
import threading

import grpc

from pyvider_rpcplugin_sync import HandshakeConfig, run_plugin
from pyvider_rpcplugin_sync.examples import kv_pb2, kv_pb2_grpc

KV_HANDSHAKE = HandshakeConfig("BASIC_PLUGIN", "hello", (1,))
LEVELS = {"trace": 5, "debug": 10, "info": 20, "warn": 30, "error": 40}
logger = logging.getLogger(__name__)


class LoudKV(kv_pb2_grpc.KVServicer):
    def __init__(self) -> None:
        self._values: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def Put(self, request: kv_pb2.PutRequest, context: grpc.ServicerContext) -> kv_pb2.Empty:
        message = request.value.decode()
        if request.key.startswith("log:"):
            logger.log(LEVELS[request.key[4:]], message)
        elif request.key in ("print:stdout", "print:stderr"):
            stream = sys.stdout if request.key == "print:stdout" else sys.stderr
            print(message, file=stream, flush=True)
        elif request.key == "thread-raise":
            worker = threading.Thread(target=fail, args=(message,), name="loud-worker")
            worker.start()
            worker.join()
        else:
            with self._lock:
                self._values[request.key] = request.value
        return kv_pb2.Empty()

    def Get(self, request: kv_pb2.GetRequest, context: grpc.ServicerContext) -> kv_pb2.GetResponse:
        if request.key == "raise":
            fail("deliberate failure in Get")
        if request.key == "block":
            cancelled = threading.Event()
            context.add_callback(cancelled.set)  # runs when the call ends or is cancelled
            cancelled.wait()
            context.abort(grpc.StatusCode.CANCELLED, "the call was cancelled")
        if request.key == "hang":
            threading.Event().wait()  # ignores cancellation: only the process's end stops it
        with self._lock:
            value = self._values.get(request.key)
        if value is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no value for key {request.key!r}")
        return kv_pb2.GetResponse(value=value)


def fail(message: str) -> None:
    raise RuntimeError(message)


def register(server: grpc.Server) -> None:
    kv_pb2_grpc.add_KVServicer_to_server(LoudKV(), server)


if __name__ == "__main__":
    raise SystemExit(run_plugin(register, handshake=KV_HANDSHAKE, log_level="trace"))
