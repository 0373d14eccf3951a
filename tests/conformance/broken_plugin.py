"""A plugin that breaks one protocol rule on purpose: ``broken_plugin.py MODE``.

Built on the public ``PluginServer`` (the handshake line is printed here, so a
mode can change it). Cookie ``PLUGIN_MAGIC_COOKIE=test_cookie_value``,
versions 5 and 6. Modes:

- ``good``: breaks nothing (the baseline)
- ``no-controller``: no plugin.GRPCController (Shutdown is Unimplemented)
- ``no-stdio``: no plugin.GRPCStdio
- ``stdout-noise``: prints a banner before the handshake line
- ``wrong-cookie-message``: refuses a missing cookie with its own words
- ``goaway-first``: stops the server inside the Shutdown handler (GOAWAY before the reply)
- ``cert-always``: sends a certificate although the host did not ask for AutoMTLS
- ``first-offered``: answers the first offered version it knows, not the highest
- ``dies-on-sigint``: keeps Python's default SIGINT handling
- ``padded-cert``: pads the certificate field with ``=``
- ``ignores-cookie``: serves without the cookie
- ``no-health``: no grpc.health.v1.Health
- ``wrong-address``: prints the address of a socket nobody listens on
"""

from __future__ import annotations

import base64
import os
import signal
import sys
import threading
from collections.abc import Callable

import grpc

from pyvider_rpcplugin_sync import HandshakeConfig, PluginServer

HANDSHAKE = HandshakeConfig(
    magic_cookie_key="PLUGIN_MAGIC_COOKIE",
    magic_cookie_value="test_cookie_value",
    protocol_versions=(5, 6),
)
SHUTDOWN = "/plugin.GRPCController/Shutdown"
STDIO = "/plugin.GRPCStdio/StreamStdio"
HEALTH = "/grpc.health.v1.Health/Check"
_FAKE_DER = bytes(range(256)) * 3 + b"\x01"  # 769 bytes: base64 needs padding


_GRPC_SERVERS: list[grpc.Server] = []


def _register(server: grpc.Server) -> None:
    """No application service (the checks use only the internal ones); keeps the server."""
    _GRPC_SERVERS.append(server)


class _Breaker(grpc.ServerInterceptor):
    def __init__(self, mode: str, stop: Callable[[], None]) -> None:
        self.mode = mode
        self.stop = stop

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        if self.mode == "no-controller" and details.method == SHUTDOWN:
            return None
        if self.mode == "no-stdio" and details.method == STDIO:
            return None
        if self.mode == "no-health" and details.method == HEALTH:
            return None
        if self.mode == "goaway-first" and details.method == SHUTDOWN:

            def shutdown(request: bytes, context: grpc.ServicerContext) -> bytes:
                self.stop()  # the GOAWAY leaves now, the reply after it
                return b""

            return grpc.unary_unary_rpc_method_handler(shutdown)
        return continuation(details)


def main(mode: str) -> int:
    if (
        mode == "wrong-cookie-message"
        and os.environ.get("PLUGIN_MAGIC_COOKIE") != "test_cookie_value"
    ):
        sys.stderr.write("error: missing cookie\n")
        return 1
    if mode != "dies-on-sigint":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    holder: list[PluginServer] = []

    def stop() -> None:
        # grpc's own stop sends the GOAWAY at once; the reply follows within the grace.
        stopped = _GRPC_SERVERS[-1].stop(1.0)
        threading.Thread(target=lambda: (stopped.wait(), holder[0].stop(0)), daemon=True).start()

    environ = dict(os.environ)
    if mode == "ignores-cookie":
        environ["PLUGIN_MAGIC_COOKIE"] = "test_cookie_value"
    if mode == "first-offered":
        offered = [
            v for v in environ.get("PLUGIN_PROTOCOL_VERSIONS", "").split(",") if v in ("5", "6")
        ]
        if offered:
            environ["PLUGIN_PROTOCOL_VERSIONS"] = offered[0]
    server = PluginServer(
        {5: _register, 6: _register},
        handshake=HANDSHAKE,
        environ=environ,
        interceptors=[_Breaker(mode, stop)],
    )
    holder.append(server)
    signal.signal(signal.SIGTERM, lambda signum, frame: server.request_stop())
    try:
        line = server.start()
    except Exception as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    cert = line.server_cert
    if mode == "cert-always" and not cert:
        cert = base64.b64encode(_FAKE_DER).decode().rstrip("=")
    if mode == "padded-cert" and cert:
        cert = base64.b64encode(base64.b64decode(cert + "=" * (-len(cert) % 4))).decode()
        if "=" not in cert:
            cert += "=="  # pad anyway: the check must see padding every run
    if mode == "stdout-noise":
        os.write(1, b"starting my plugin...\n")
    address = line.address + ".nowhere" if mode == "wrong-address" else line.address
    fields = ["1", str(line.app_version), line.network, address, "grpc", cert]
    os.write(1, ("|".join(fields) + "\n").encode())
    server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "good"))
