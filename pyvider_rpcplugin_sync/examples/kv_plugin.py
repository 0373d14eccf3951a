"""go-plugin's KV example as a Python plugin.

Loadable by go-plugin's own KV example host::

    KV_PLUGIN="python3 -m pyvider_rpcplugin_sync.examples.kv_plugin" ./kv put hello world

Values live in memory, or, when ``KV_STORE_DIR`` is set, in files ``kv_<key>``
in that directory (as go-plugin's example plugins keep them), so that values
survive from one host run to the next.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import grpc

from pyvider_rpcplugin_sync import HandshakeConfig, run_plugin
from pyvider_rpcplugin_sync._protos import kv_pb2, kv_pb2_grpc

# go-plugin's examples/grpc handshake.
KV_HANDSHAKE = HandshakeConfig(
    magic_cookie_key="BASIC_PLUGIN", magic_cookie_value="hello", protocol_versions=(1,)
)


class KVStore(kv_pb2_grpc.KVServicer):
    """A key/value store, safe for the server's worker threads."""

    def __init__(self, directory: Path | None = None) -> None:
        self._values: dict[str, bytes] = {}
        self._directory = directory
        self._lock = threading.Lock()

    def Put(self, request: kv_pb2.PutRequest, context: grpc.ServicerContext) -> kv_pb2.Empty:
        with self._lock:
            if self._directory is None:
                self._values[request.key] = request.value
            else:
                self._file(request.key, context).write_bytes(request.value)
        return kv_pb2.Empty()

    def Get(self, request: kv_pb2.GetRequest, context: grpc.ServicerContext) -> kv_pb2.GetResponse:
        with self._lock:
            if self._directory is None:
                value = self._values.get(request.key)
            else:
                path = self._file(request.key, context)
                value = path.read_bytes() if path.exists() else None
        if value is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no value for key {request.key!r}")
        return kv_pb2.GetResponse(value=value)

    def _file(self, key: str, context: grpc.ServicerContext) -> Path:
        assert self._directory is not None
        if not key or "/" in key or key in (".", ".."):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unusable key {key!r}")
        return self._directory / f"kv_{key}"


def register(server: grpc.Server) -> None:
    store_dir = os.environ.get("KV_STORE_DIR")
    kv_pb2_grpc.add_KVServicer_to_server(KVStore(Path(store_dir) if store_dir else None), server)


if __name__ == "__main__":
    raise SystemExit(run_plugin(register, handshake=KV_HANDSHAKE))
