"""A Flask app whose endpoints use the KV example plugin through a ``SharedPlugin``.

The plugin starts at the first request that needs it, in the process that serves
it (each gunicorn worker gets its own), never at import::

    gunicorn --preload --workers 2 --threads 4 pyvider_rpcplugin_sync.examples.flask_app:app

- ``PUT /kv/<key>`` stores the request body; ``GET /kv/<key>`` returns
  ``{"key": ..., "value": ...}`` (404 for a missing key);
- ``GET /health`` is the plugin's ``SharedPlugin.health`` (503 unless it serves);
- when the plugin is unavailable (starting failed, it died, it is restarting)
  the answer is a 503 with a JSON body and ``Retry-After: 1``.
"""

from __future__ import annotations

import sys
from typing import Any

import grpc
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from pyvider_rpcplugin_sync import RPCPluginError, SharedPlugin
from pyvider_rpcplugin_sync.examples import kv_pb2, kv_pb2_grpc
from pyvider_rpcplugin_sync.examples.kv_plugin import KV_HANDSHAKE

KV_COMMAND = [sys.executable, "-m", "pyvider_rpcplugin_sync.examples.kv_plugin"]
# Every call has a deadline: a stuck plugin must not hold request threads forever.
CALL_TIMEOUT = 5.0


def kv_plugin() -> SharedPlugin[kv_pb2_grpc.KVStub]:
    """The app's KV plugin handle: built now, started at first use."""
    return SharedPlugin(KV_COMMAND, handshake=KV_HANDSHAKE, stub=kv_pb2_grpc.KVStub)


def error_response(exc: Exception) -> tuple[int, dict[str, str]]:
    """HTTP status and JSON body for a plugin failure."""
    if isinstance(exc, RPCPluginError):
        return 503, {"error": "plugin unavailable", "detail": exc.message}
    code = exc.code() if isinstance(exc, grpc.Call) else None
    detail = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    statuses: dict[grpc.StatusCode | None, tuple[int, str]] = {
        grpc.StatusCode.NOT_FOUND: (404, "not found"),
        grpc.StatusCode.INVALID_ARGUMENT: (400, "bad request"),
        grpc.StatusCode.UNAVAILABLE: (503, "plugin unavailable"),
        grpc.StatusCode.CANCELLED: (503, "plugin unavailable"),
        grpc.StatusCode.DEADLINE_EXCEEDED: (504, "plugin timed out"),
    }
    status, error = statuses.get(code, (502, "plugin error"))
    return status, {"error": error, "detail": detail or ""}


def create_app(kv: SharedPlugin[kv_pb2_grpc.KVStub] | None = None) -> Flask:
    """The app; tests pass their own ``kv`` (and close it)."""
    app = Flask(__name__)
    plugin = kv if kv is not None else kv_plugin()
    app.extensions["kv_plugin"] = plugin

    @app.get("/kv/<key>")
    def get_value(key: str) -> ResponseReturnValue:
        reply = plugin.stub.Get(kv_pb2.GetRequest(key=key), timeout=CALL_TIMEOUT)
        return jsonify(key=key, value=reply.value.decode("utf-8", "replace"))

    @app.put("/kv/<key>")
    def put_value(key: str) -> ResponseReturnValue:
        value = request.get_data()
        plugin.stub.Put(kv_pb2.PutRequest(key=key, value=value), timeout=CALL_TIMEOUT)
        return jsonify(key=key, stored=len(value))

    @app.get("/health")
    def health() -> ResponseReturnValue:
        summary: dict[str, Any] = plugin.health()
        return jsonify(summary), 200 if summary["ok"] else 503

    @app.errorhandler(RPCPluginError)
    @app.errorhandler(grpc.RpcError)
    def plugin_failed(exc: Exception) -> ResponseReturnValue:
        status, body = error_response(exc)
        headers = {"Retry-After": "1"} if status == 503 else {}
        return jsonify(body), status, headers

    return app


app = create_app()

if __name__ == "__main__":  # the development server: threaded, one process
    app.run(host="127.0.0.1", port=5000, threaded=True)
