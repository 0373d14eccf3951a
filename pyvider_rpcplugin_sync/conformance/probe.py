"""The probe plugin that ``conformance host`` points a host at; it reports what the host does.

The kit writes a small executable that calls ``main(config)`` with the path of
the kit's report socket, the cookie to expect and the versions to implement.
Each launch connects to that socket and sends JSON lines: the environment it
got (shapes only: the cookie's value and the certificate are never sent), each
RPC the host makes, a Shutdown, a SIGTERM. After a Shutdown the probe does not
exit: it waits (at most ``LINGER`` seconds) for a SIGTERM or SIGKILL, so the kit
measures how long the host waits; the kit sees a SIGKILL as the end of the
connection.
In ``foreign_cert`` mode the handshake advertises a certificate other than the
one the probe serves: a host that verifies the plugin's certificate never
gets through.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from .certs import make_cert, shape_of_pem

LINGER = 5.0
SHUTDOWN = "/plugin.GRPCController/Shutdown"


class _Reporter:
    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(path)

    def send(self, event: str, **data: Any) -> None:
        line = json.dumps({"event": event, **data}) + "\n"
        # OSError: the kit is gone, there is nothing to report to.
        with self._lock, contextlib.suppress(OSError):
            self._sock.sendall(line.encode())


def environment_facts(env: Mapping[str, str], cookie_key: str, cookie_value: str) -> dict[str, Any]:
    """What the host passed, without secrets: the cookie as missing/match/mismatch, the
    certificate as its shape."""
    facts: dict[str, Any] = {
        "cookie": "missing"
        if cookie_key not in env
        else ("match" if env[cookie_key] == cookie_value else "mismatch"),
        "argv": sys.argv[1:],
    }
    for name in (
        "PLUGIN_PROTOCOL_VERSIONS",
        "PLUGIN_MIN_PORT",
        "PLUGIN_MAX_PORT",
        "PLUGIN_MULTIPLEX_GRPC",
        "PLUGIN_UNIX_SOCKET_DIR",
        "PLUGIN_UNIX_SOCKET_GROUP",
    ):
        facts[name] = env.get(name)
    pem = env.get("PLUGIN_CLIENT_CERT")
    if pem:
        try:
            cert_shape = shape_of_pem(pem.encode())
            facts["client_cert"] = {
                "ok": True,
                "describe": cert_shape.describe(),
                "key": cert_shape.key,
                "problems": cert_shape.problems("client"),
            }
        except ValueError as exc:
            facts["client_cert"] = {"ok": False, "error": str(exc)}
    else:
        facts["client_cert"] = None
    try:
        mode = os.fstat(0).st_mode
        facts["stdin"] = (
            "tty" if os.isatty(0) else ("pipe" if stat.S_ISFIFO(mode) else "file or device")
        )
    except OSError:
        facts["stdin"] = "closed"
    return facts


class _Recorder(grpc.ServerInterceptor):
    def __init__(self, report: Callable[..., None], on_shutdown: Callable[[], None]) -> None:
        self._report = report
        self._on_shutdown = on_shutdown

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        self._report("rpc", method=method)
        if method == SHUTDOWN:

            def shutdown(request: bytes, context: grpc.ServicerContext) -> bytes:
                self._on_shutdown()
                return b""

            return grpc.unary_unary_rpc_method_handler(
                shutdown, request_deserializer=None, response_serializer=None
            )
        return continuation(handler_call_details)


def main(config: Mapping[str, Any]) -> int:
    from pyvider_rpcplugin_sync import HandshakeConfig, PluginServer

    reporter = _Reporter(config["report"])
    env = dict(os.environ)
    cookie_key, cookie_value = config["cookie_key"], config["cookie_value"]
    facts = environment_facts(env, cookie_key, cookie_value)
    log_line = json.dumps(
        {"@level": "info", "@message": config["log_token"], "@timestamp": _timestamp()}
    )
    reporter.send("start", pid=os.getpid(), mode=config["mode"], env=facts, log_line=log_line)
    os.write(2, (log_line + "\n").encode())
    if facts["cookie"] != "match":
        sys.stderr.write(
            "This binary is a plugin. These are not meant to be executed directly.\n"
            "Please execute the program that consumes these plugins, which will\n"
            "load any plugins automatically\n"
        )
        return 1
    lingering = threading.Event()

    def on_shutdown() -> None:
        reporter.send("shutdown")
        lingering.set()

    terminated = threading.Event()

    def on_term(signum: int, frame: object) -> None:
        reporter.send("sigterm")
        terminated.set()
        lingering.set()

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, on_term)
    handshake = HandshakeConfig(
        magic_cookie_key=cookie_key,
        magic_cookie_value=cookie_value,
        protocol_versions=tuple(config["versions"]),
    )
    server = PluginServer(
        {v: _register_nothing for v in config["versions"]},
        handshake=handshake,
        interceptors=[_Recorder(reporter.send, on_shutdown)],
    )
    line = server.start()
    cert = line.server_cert
    if config["mode"] == "foreign_cert" and cert:
        cert = base64.b64encode(make_cert().der).decode().rstrip("=")
    fields = [
        str(line.core_version),
        str(line.app_version),
        line.network,
        line.address,
        line.protocol,
        cert,
    ]
    if line.multiplex is not None:
        fields.append("true" if line.multiplex else "false")
    os.write(1, ("|".join(fields) + "\n").encode())
    reporter.send(
        "handshake", network=line.network, tls=bool(line.server_cert), version=line.app_version
    )
    lingering.wait()
    # After a Shutdown the probe stays: a SIGTERM ends it at once, a SIGKILL ends the
    # report connection; a host that does neither is given up on after LINGER seconds.
    if not terminated.wait(LINGER):
        reporter.send("gave_up")
    server.stop(0)
    return 0


def _register_nothing(server: grpc.Server) -> None:
    """The probe implements no application service: every application call is Unimplemented."""


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}+00:00"
