"""The echo plugin with errors on request, for the host's error and option tests.

Usage: ``echo_errors.py [MODE]``; ``MODE`` ``crash-at-start`` makes its registrar
raise (a Python traceback before any handshake). Echo payloads:

- ``raise``: the handler raises ValueError("boom-handler");
- ``thread``: a thread raises RuntimeError("boom-thread") (joined before the reply);
- ``stderr:TEXT``: prints TEXT to ``sys.stderr`` (pipe and StreamStdio both carry it);
- ``traceparent``: replies with the call's ``traceparent`` metadata (or nothing);

any other payload is echoed back.

``MAX_MESSAGE_SIZE`` in the environment sets the server's ``max_message_size``.
"""

from __future__ import annotations

import os
import sys
import threading

import grpc

from pyvider_rpcplugin_sync import run_plugin
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc


def _thread_that_fails() -> None:
    raise RuntimeError("boom-thread")


class ErrorEcho(echo_pb2_grpc.EchoServicer):
    def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.ServicerContext
    ) -> echo_pb2.EchoResponse:
        payload = request.payload
        if payload == b"raise":
            raise ValueError("boom-handler")
        if payload == b"thread":
            worker = threading.Thread(target=_thread_that_fails, name="failing-worker")
            worker.start()
            worker.join()
        elif payload == b"traceparent":
            metadata = dict(context.invocation_metadata())
            return echo_pb2.EchoResponse(payload=str(metadata.get("traceparent", "")).encode())
        elif payload.startswith(b"stderr:"):
            print(payload[7:].decode(), file=sys.stderr, flush=True)
        return echo_pb2.EchoResponse(payload=payload)


def register(server: grpc.Server) -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "crash-at-start":
        raise ValueError("boom-register")
    echo_pb2_grpc.add_EchoServicer_to_server(ErrorEcho(), server)


if __name__ == "__main__":
    options = {}
    if "MAX_MESSAGE_SIZE" in os.environ:
        options["max_message_size"] = int(os.environ["MAX_MESSAGE_SIZE"])
    raise SystemExit(run_plugin(register, **options))
