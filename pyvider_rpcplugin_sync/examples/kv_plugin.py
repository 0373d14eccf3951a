"""go-plugin's KV example as a Python plugin.

Loadable by go-plugin's own KV example host::

    KV_PLUGIN="python3 -m pyvider_rpcplugin_sync.examples.kv_plugin" ./kv put hello world

Values persist from one host run to the next (each run starts a new plugin
process), so ``pyvider-rpcplugin-sync kv put a 1`` then ``kv get a`` prints ``1``.
They are files ``kv_<key>`` (as go-plugin's example plugins keep them) in:

- ``$KV_STORE_DIR`` when it is set; ``KV_STORE_DIR=:memory:`` keeps values in
  memory instead, for the plugin's lifetime only;
- else a per-user state directory, ``$XDG_STATE_HOME/pyvider-rpcplugin-sync/kv``
  (default ``~/.local/state/pyvider-rpcplugin-sync/kv``), created private (0700).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Mapping
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
                _write_atomically(self._file(request.key, context), request.value)
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


def _write_atomically(path: Path, value: bytes) -> None:
    """Several plugin processes may share the directory: a reader sees the old value
    or the new one, never half of one."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".kv-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(value)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


MEMORY = ":memory:"


def store_directory(environ: Mapping[str, str]) -> Path | None:
    """Where values are kept: ``KV_STORE_DIR``, else the per-user state directory;
    None for ``KV_STORE_DIR=:memory:``."""
    configured = environ.get("KV_STORE_DIR")
    if configured == MEMORY:
        return None
    if configured:
        return Path(configured)
    state_home = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "pyvider-rpcplugin-sync" / "kv"


def register(server: grpc.Server) -> None:
    directory = store_directory(os.environ)
    if directory is not None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    kv_pb2_grpc.add_KVServicer_to_server(KVStore(directory), server)


if __name__ == "__main__":
    raise SystemExit(run_plugin(register, handshake=KV_HANDSHAKE))
