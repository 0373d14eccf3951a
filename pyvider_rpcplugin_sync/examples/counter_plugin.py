"""go-plugin's bidirectional (counter) example as a Python plugin: a callback into the host.

``Put(add_server, key, value)`` dials the host's brokered ``AddHelper`` server
with id ``add_server`` and stores ``AddHelper.Sum(current, value)``: the host
does the arithmetic. Loadable by go-plugin's own counter host::

    COUNTER_PLUGIN="python3 -m pyvider_rpcplugin_sync.examples.counter_plugin" ./counter put a 2

and by ``python -m pyvider_rpcplugin_sync counter put a 2``. Counts live in
memory, or, when ``COUNTER_STORE_DIR`` is set, in files ``kv_<key>`` in that
directory (as go-plugin's example keeps them), so they survive host runs.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import grpc

from pyvider_rpcplugin_sync import Broker, HandshakeConfig, run_plugin
from pyvider_rpcplugin_sync.examples import counter_pb2, counter_pb2_grpc

# go-plugin's examples/bidirectional handshake.
COUNTER_HANDSHAKE = HandshakeConfig(
    magic_cookie_key="BASIC_PLUGIN", magic_cookie_value="hello", protocol_versions=(1,)
)
CALLBACK_TIMEOUT = 10.0


class Counter(counter_pb2_grpc.CounterServicer):
    """Counts by key; every Put asks the host's AddHelper for the new total."""

    def __init__(self, broker: Broker, directory: Path | None = None) -> None:
        self._broker = broker
        self._directory = directory
        self._values: dict[str, int] = {}
        # One Put at a time: read, call back, write must not interleave.
        self._lock = threading.Lock()

    def Get(
        self, request: counter_pb2.CounterGetRequest, context: grpc.ServicerContext
    ) -> counter_pb2.CounterGetResponse:
        with self._lock:
            return counter_pb2.CounterGetResponse(value=self._load(request.key, context))

    def Put(
        self, request: counter_pb2.CounterPutRequest, context: grpc.ServicerContext
    ) -> counter_pb2.CounterEmpty:
        with self._lock:
            current = self._load(request.key, context)
            with self._broker.dial(request.add_server) as channel:
                adder = counter_pb2_grpc.AddHelperStub(channel)
                reply = adder.Sum(
                    counter_pb2.SumRequest(a=current, b=request.value), timeout=CALLBACK_TIMEOUT
                )
            self._store(request.key, reply.r, context)
        return counter_pb2.CounterEmpty()

    def _load(self, key: str, context: grpc.ServicerContext) -> int:
        if self._directory is None:
            return self._values.get(key, 0)
        path = self._file(key, context)
        return int(path.read_text()) if path.exists() else 0

    def _store(self, key: str, value: int, context: grpc.ServicerContext) -> None:
        if self._directory is None:
            self._values[key] = value
        else:
            self._file(key, context).write_text(str(value))

    def _file(self, key: str, context: grpc.ServicerContext) -> Path:
        assert self._directory is not None
        if not key or "/" in key or key in (".", ".."):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unusable key {key!r}")
        return self._directory / f"kv_{key}"


def register(server: grpc.Server, broker: Broker) -> None:
    """Two parameters: the plugin gets its session's broker for the callbacks."""
    store_dir = os.environ.get("COUNTER_STORE_DIR")
    counter = Counter(broker, Path(store_dir) if store_dir else None)
    counter_pb2_grpc.add_CounterServicer_to_server(counter, server)


if __name__ == "__main__":
    raise SystemExit(run_plugin(register, handshake=COUNTER_HANDSHAKE))
