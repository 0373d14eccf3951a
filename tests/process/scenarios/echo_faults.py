"""The echo plugin with misbehaviour on request, for the host's process tests.

Usage: ``echo_faults.py [MODE]``; modes change how it starts or stops:

- ``serve`` (default): a normal plugin; magic Echo payloads do odd things:
  ``crash`` exits at once (code 7); ``flood:STDOUT_MB:STDERR_MB`` writes that
  much to the real stdout and stderr before replying; a Stream of ``crash`` sends one
  message, then exits (code 7); ``log`` writes hclog and
  plain lines to stderr, ending with a line "done-marker"; ``env:NAME`` replies
  with that environment variable; ``print:TEXT`` prints TEXT (through GRPCStdio);
  ``sleep:SECONDS[:TAG]`` replies after that long (a slow or hung handler; it ends early
  when the call is cancelled); a Stream of ``sleep:SECONDS`` waits that long before
  each message
- ``slow-stop GRACE``: serves with ``stop_grace=GRACE`` and 20 workers
- ``noise``: prints a banner before the handshake line
- ``versions``: supports only app protocol version 7
- ``die-after-handshake``: prints a valid handshake line, then exits (code 5)
- ``stubborn``: ignores Shutdown and SIGTERM
- ``wrong-cert``: serves TLS but prints another certificate in its handshake line
- ``immortal``: like ``stubborn``, and does not even stop when its parent dies
- ``escape PIDFILE``: first starts a grandchild in a session of its own (out of the
  plugin's process group) that keeps stdout and stderr open for a minute; its pid goes
  to PIDFILE
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

import grpc

from pyvider_rpcplugin_sync import HandshakeConfig, PluginServer, run_plugin
from pyvider_rpcplugin_sync._protocol.handshake import format_handshake
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

log = logging.getLogger("__main__")
# The real stdout, kept before serve() redirects fd 1 into GRPCStdio.
REAL_STDOUT = os.dup(1)
MB = 1024 * 1024


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def flood(stdout_mb: int, stderr_mb: int) -> None:
    line = b"x" * 1023 + b"\n"
    for fd, megabytes in ((REAL_STDOUT, stdout_mb), (2, stderr_mb)):
        write_all(fd, line * (megabytes * 1024))


def emit_logs() -> None:
    log.debug("a debug record", extra={"request_id": "r-1"})
    log.info("an info record")
    log.warning("a warning record")
    log.error("an error record", extra={"count": 3})
    raw = [
        "[WARN] a tagged warning",
        "[ERROR] a tagged error",
        "an untagged line",
        json.dumps({"@level": 5, "@message": "odd types are not hclog"}),
        json.dumps({"@level": "warn", "@message": "clashing keys", "name": "n", "msg": "m"}),
        json.dumps(
            {
                "@level": "info",
                "@message": "done-marker",
                "@timestamp": "2026-01-02T03:04:05.123456Z",
            }
        ),
    ]
    write_all(2, ("\n".join(raw) + "\n").encode())


class FaultyEcho(echo_pb2_grpc.EchoServicer):
    def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.ServicerContext
    ) -> echo_pb2.EchoResponse:
        payload = request.payload
        if payload == b"crash":
            os._exit(7)
        if payload == b"unavailable":  # the application's own status, not a death
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again later")
        if payload.startswith(b"flood:"):
            _, out_mb, err_mb = payload.split(b":")
            flood(int(out_mb), int(err_mb))
        elif payload == b"log":
            emit_logs()
        elif payload.startswith(b"env:"):
            return echo_pb2.EchoResponse(
                payload=os.environ.get(payload[4:].decode(), "<unset>").encode()
            )
        elif payload.startswith(b"print:"):
            print(payload[6:].decode(), flush=True)
        elif payload.startswith(b"sleep:"):
            ended = threading.Event()
            context.add_callback(ended.set)  # the call was cancelled or cut
            ended.wait(float(payload.split(b":")[1]))
        return echo_pb2.EchoResponse(payload=payload)

    def Stream(
        self, request: echo_pb2.StreamRequest, context: grpc.ServicerContext
    ) -> Iterator[echo_pb2.EchoResponse]:
        pause = float(request.payload[6:]) if request.payload.startswith(b"sleep:") else 0.0
        for index in range(request.count):
            if pause:
                time.sleep(pause)
            if request.payload == b"crash" and index == 1:
                os._exit(7)  # a stream cut by the plugin's crash, after its first message
            yield echo_pb2.EchoResponse(payload=request.payload)


def register(server: grpc.Server) -> None:
    echo_pb2_grpc.add_EchoServicer_to_server(FaultyEcho(), server)


def run_raw(after_handshake: str) -> int:
    """Start a PluginServer without serve(): for faults serve() would not commit."""
    server = PluginServer(register)
    if after_handshake in ("stubborn", "immortal"):
        server.request_stop = lambda: None  # type: ignore[method-assign]
    line = server.start()
    if after_handshake == "wrong-cert":
        from pyvider_rpcplugin_sync._protocol.handshake import encode_cert_field
        from pyvider_rpcplugin_sync._transport.tls.certs import generate_identity

        other = encode_cert_field(generate_identity().cert_der)
        line = dataclasses.replace(line, server_cert=other)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    write_all(1, (format_handshake(line) + "\n").encode())
    if after_handshake == "die":
        os._exit(5)
    if after_handshake == "immortal":
        threading.Event().wait()
    # No serve(), so no parent watch: never outlive the test process.
    parent = os.getppid()
    while os.getppid() == parent:
        threading.Event().wait(0.2)
    return 0


def escape(pid_file: str) -> None:
    import subprocess

    grandchild = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # out of the group: closing the plugin does not reach it
    )
    with open(pid_file, "w") as handle:
        handle.write(str(grandchild.pid))


def main(mode: str) -> int:
    if mode == "escape":
        escape(sys.argv[2])
    elif mode == "noise":
        print("My Plugin v1.2.3 starting up", flush=True)
    elif mode == "versions":
        return run_plugin(register, handshake=HandshakeConfig(protocol_versions=(7,)))
    elif mode == "die-after-handshake":
        return run_raw("die")
    elif mode in ("stubborn", "wrong-cert", "immortal"):
        return run_raw(mode)
    elif mode == "slow-stop":
        return run_plugin(register, stop_grace=float(sys.argv[2]), max_workers=20)
    return run_plugin(register)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "serve"))
