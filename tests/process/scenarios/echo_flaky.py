"""The echo plugin that fails on request, for the host's retry and breaker tests.

Echo payloads:

- ``flaky:N:TAG``: the first N calls with that TAG abort with UNAVAILABLE, the next
  ones reply ``TAG:<attempt>`` (1-based, counted per TAG);
- ``fail``: aborts with INTERNAL (an alive plugin failing its calls);
- ``sleep:SECONDS``: replies after that long (ends early when the call is cancelled);
- ``crash``: exits at once (code 7);

- ``stats``: with ``METRICS=1`` in the environment the plugin serves with
  ``metrics=CallStats()``; this replies with its ``snapshot()`` as JSON;

any other payload is echoed back. ``Stream`` sends the payload ``count`` times.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterator

import grpc

from pyvider_rpcplugin_sync import CallStats, run_plugin
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

STATS = CallStats()


class FlakyEcho(echo_pb2_grpc.EchoServicer):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: Counter[bytes] = Counter()

    def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.ServicerContext
    ) -> echo_pb2.EchoResponse:
        payload = request.payload
        if payload.startswith(b"flaky:"):
            _, failures, tag = payload.split(b":", 2)
            with self._lock:
                self._attempts[tag] += 1
                attempt = self._attempts[tag]
            if attempt <= int(failures):
                context.abort(grpc.StatusCode.UNAVAILABLE, f"attempt {attempt}: try again")
            return echo_pb2.EchoResponse(payload=tag + b":" + str(attempt).encode())
        if payload == b"stats":
            return echo_pb2.EchoResponse(payload=json.dumps(STATS.snapshot()).encode())
        if payload == b"fail":
            context.abort(grpc.StatusCode.INTERNAL, "failing on purpose")
        if payload == b"crash":
            os._exit(7)
        if payload.startswith(b"sleep:"):
            ended = threading.Event()
            context.add_callback(ended.set)  # the call was cancelled or cut
            ended.wait(float(payload.split(b":")[1]))
        return echo_pb2.EchoResponse(payload=payload)

    def Stream(
        self, request: echo_pb2.StreamRequest, context: grpc.ServicerContext
    ) -> Iterator[echo_pb2.EchoResponse]:
        for _ in range(request.count):
            yield echo_pb2.EchoResponse(payload=request.payload)


def register(server: grpc.Server) -> None:
    echo_pb2_grpc.add_EchoServicer_to_server(FlakyEcho(), server)


if __name__ == "__main__":
    metrics = STATS if os.environ.get("METRICS") == "1" else None
    raise SystemExit(run_plugin(register, metrics=metrics))
