"""Views of the example Django project: the KV plugin behind a ``SharedPlugin``.

- ``PUT /kv/<key>`` stores the request body; ``GET /kv/<key>`` returns
  ``{"key": ..., "value": ...}`` (404 for a missing key);
- ``GET /health`` is the plugin's ``SharedPlugin.health`` (503 unless it serves);
- when the plugin is unavailable the answer is a 503 with a JSON body and
  ``Retry-After: 1``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import grpc
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    JsonResponse,
)

from pyvider_rpcplugin_sync import RPCPluginError, SharedPlugin
from pyvider_rpcplugin_sync.examples import kv_pb2, kv_pb2_grpc
from pyvider_rpcplugin_sync.examples.kv_plugin import KV_HANDSHAKE

KV_COMMAND = [sys.executable, "-m", "pyvider_rpcplugin_sync.examples.kv_plugin"]
# Every call has a deadline: a stuck plugin must not hold request threads forever.
CALL_TIMEOUT = 5.0

# Built at import, started at the first request (in each worker process).
KV = SharedPlugin(KV_COMMAND, handshake=KV_HANDSHAKE, stub=kv_pb2_grpc.KVStub)

_GRPC_STATUS: dict[grpc.StatusCode | None, tuple[int, str]] = {
    grpc.StatusCode.NOT_FOUND: (404, "not found"),
    grpc.StatusCode.INVALID_ARGUMENT: (400, "bad request"),
    grpc.StatusCode.UNAVAILABLE: (503, "plugin unavailable"),
    grpc.StatusCode.CANCELLED: (503, "plugin unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "plugin timed out"),
}

View = Callable[..., HttpResponse]


def plugin_errors(view: View) -> View:
    """Answer plugin failures with JSON: 503 (+ Retry-After) when it is unavailable."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except RPCPluginError as exc:
            status, body = 503, {"error": "plugin unavailable", "detail": exc.message}
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            status, error = _GRPC_STATUS.get(code, (502, "plugin error"))
            detail = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            body = {"error": error, "detail": detail or ""}
        response = JsonResponse(body, status=status)
        if status == 503:
            response["Retry-After"] = "1"
        return response

    return wrapper


@plugin_errors
def kv(request: HttpRequest, key: str) -> HttpResponse:
    if request.method not in ("GET", "PUT"):
        return HttpResponseNotAllowed(["GET", "PUT"])
    if request.method == "PUT":
        value = request.body
        KV.stub.Put(kv_pb2.PutRequest(key=key, value=value), timeout=CALL_TIMEOUT)
        return JsonResponse({"key": key, "stored": len(value)})
    reply = KV.stub.Get(kv_pb2.GetRequest(key=key), timeout=CALL_TIMEOUT)
    return JsonResponse({"key": key, "value": reply.value.decode("utf-8", "replace")})


def health(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    summary = KV.health()
    return JsonResponse(summary, status=200 if summary["ok"] else 503)
