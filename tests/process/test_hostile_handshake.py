"""Hostile or broken handshake lines: refused with a typed error within the start's bound,
leaving no fd, thread or process behind, and never removing what is not the host's.

Every start here has ``start_timeout=START_TIMEOUT``: each case must fail within it (plus
a margin for a loaded machine), and leave nothing behind once grpc's one-time resources
exist (``warm_grpc``). Child processes are checked by the directory's autouse fixture.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from leak_check import leaves_nothing
from process_helpers import ECHO, scenario

from pyvider_rpcplugin_sync import HandshakeError, RPCPluginError, StartTimeout, TransportError
from pyvider_rpcplugin_sync._host.process import PluginProcess
from pyvider_rpcplugin_sync._protocol.handshake import encode_cert_field
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc
from pyvider_rpcplugin_sync._transport.tls.certs import self_signed_identity

pytestmark = pytest.mark.timeout(60)

START_TIMEOUT = 2.0
# A loaded machine's noise; the bound stays well under the connect step's 10 s default.
MARGIN = 4.0


def raw_line(text: str) -> list[str]:
    return scenario("faults", "line", text)


@pytest.fixture(scope="module", autouse=True)
def warm_grpc() -> Iterator[None]:
    """Real sessions first (plaintext unix, AutoMTLS tcp): grpc's process-wide state
    exists. All the cases together leave nothing either (each is checked alone, too)."""
    for tls, transport in ((False, "unix"), (True, "tcp")):
        with PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub, tls=tls, transport=transport) as p:
            p.stub.Echo(echo_pb2.EchoRequest(payload=b"warm"), timeout=10)
    with leaves_nothing():
        yield


def refused(
    cmd: list[str], error: type[RPCPluginError], match: str | None = None, **options: Any
) -> RPCPluginError:
    """Start ``cmd``: it must fail with ``error`` in time and leave nothing behind."""
    options.setdefault("tls", False)
    with leaves_nothing():
        began = time.monotonic()
        with pytest.raises(error, match=match) as info:
            PluginProcess(cmd, start_timeout=START_TIMEOUT, **options).start()
        elapsed = time.monotonic() - began
    assert elapsed < START_TIMEOUT + MARGIN, f"the start failed only after {elapsed:.1f} s"
    return info.value


def test_wrapped_port_never_reaches_another_process() -> None:
    # 65536 + P wrapped around to P in grpc: the host reached this innocent plugin
    # and, on close, sent it Shutdown although it never started it.
    with PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub, tls=False, transport="tcp") as victim:
        port = int((victim.address or "").rsplit(":", 1)[1])
        for wrapped in (65536 + port, 2 * 65536 + port):
            line = f"1|1|tcp|127.0.0.1:{wrapped}|grpc|"
            refused(raw_line(line), HandshakeError, "invalid tcp address")
        reply = victim.stub.Echo(echo_pb2.EchoRequest(payload=b"alive"), timeout=5)
        assert reply.payload == b"alive"
        assert victim.returncode is None


@pytest.mark.parametrize("address", ["127.0.0.1:+-80", "127.0.0.1: 1", "127.0.0.1", "[::1]"])
def test_malformed_tcp_address_is_a_handshake_error(address: str) -> None:
    refused(raw_line(f"1|1|tcp|{address}|grpc|"), HandshakeError, "invalid tcp address")


def test_overlong_unix_path_fails_cleanly_and_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    path = "/tmp/" + "p" * 200
    refused(raw_line(f"1|1|unix|{path}|grpc|"), HandshakeError, "sun_path")
    # grpc's C core logs straight to fd 2; nothing of it may appear.
    assert capfd.readouterr().err == ""


def test_http2_server_that_is_not_grpc_is_refused() -> None:
    # Its 404 reads as UNIMPLEMENTED, which a gRPC plugin without health also says.
    refused(scenario("http2_404"), TransportError, "not a gRPC server")


# --- another program's server named in the handshake line -----------------------------


class ForeignServer:
    """A server of some other program on a unix socket (or TCP), run in this process."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind = kind
        family = socket.AF_INET if kind == "silent-tcp" else socket.AF_UNIX
        sock_type = socket.SOCK_DGRAM if kind == "datagram" else socket.SOCK_STREAM
        self.sock = socket.socket(family, sock_type)
        if family == socket.AF_INET:
            self.sock.bind(("127.0.0.1", 0))
            self.line = f"1|1|tcp|127.0.0.1:{self.sock.getsockname()[1]}|grpc|"
        else:
            self.sock.bind(str(path))
            self.line = f"1|1|unix|{path}|grpc|"
        if kind not in ("not-listening", "datagram"):
            self.sock.listen()
        self.thread: threading.Thread | None = None
        if kind in ("closes", "garbage", "http1"):
            self.thread = threading.Thread(target=self._serve, name=f"foreign-{kind}")
            self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # until close() shuts the listener down
            while True:
                conn, _ = self.sock.accept()
                with conn:
                    if self.kind == "garbage":
                        conn.sendall(bytes(range(256)) * 4)
                    elif self.kind == "http1":
                        conn.recv(65536)
                        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        if self.thread is not None:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
            self.thread.join(10)
        self.sock.close()


@pytest.fixture
def foreign(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ForeignServer]:
    server = ForeignServer(request.param, tmp_path / "precious.sock")
    try:
        yield server
    finally:
        server.close()


FOREIGN_KINDS = ["silent", "silent-tcp", "closes", "garbage", "http1", "not-listening", "datagram"]


@pytest.mark.parametrize("foreign", FOREIGN_KINDS, indirect=True)
def test_another_programs_socket_is_refused_in_time_and_never_removed(
    foreign: ForeignServer, tmp_path: Path
) -> None:
    precious = tmp_path / "precious.sock"
    # A silent server runs the start out; the others fail the connect at once.
    error = StartTimeout if foreign.kind.startswith("silent") else TransportError
    exc = refused(raw_line(foreign.line), error)
    if error is StartTimeout:
        assert "start_timeout" in (exc.hint or "")
    if foreign.kind != "silent-tcp":
        assert precious.is_socket(), "the host removed another program's socket"


@pytest.mark.parametrize("curve", ["secp256r1", "secp521r1"])  # grpcio's TLS; the ssl bridge
def test_a_silent_server_with_automtls_runs_out_the_start_in_time(
    curve: str, tmp_path: Path
) -> None:
    cert = encode_cert_field(self_signed_identity(curve, datetime.timedelta(hours=1)).cert_der)
    server = ForeignServer("silent", tmp_path / "precious.sock")
    try:
        exc = refused(raw_line(server.line + cert), StartTimeout, tls=True)
        assert "start_timeout" in (exc.hint or "")
    finally:
        server.close()


def test_a_socket_named_like_go_plugins_but_older_than_the_plugin_stays(tmp_path: Path) -> None:
    # go-plugin < 1.5 names its socket $TMPDIR/plugin<digits>: this one is such a name in
    # the plugin's temp dir, but it existed before the plugin started, so it is not its.
    path = tmp_path / "plugin123456"
    server = ForeignServer("closes", path)
    long_ago = time.time() - 3600
    os.utime(path, (long_ago, long_ago))  # another program's socket, from an hour ago
    try:
        cmd = raw_line(f"1|1|unix|{path}|grpc|")
        refused(cmd, TransportError, env={"TMPDIR": str(tmp_path)})
        assert path.is_socket()
    finally:
        server.close()


def test_the_plugins_own_socket_in_its_temp_dir_is_removed(tmp_path: Path) -> None:
    # A plugin that ignores PLUGIN_UNIX_SOCKET_DIR (go-plugin < 1.5) and is killed
    # leaves its socket: the host removes it, as it can tell the plugin made it.
    cmd = scenario("faults", "listen-tmp")
    exc = refused(cmd, StartTimeout, env={"TMPDIR": str(tmp_path)})
    assert "start_timeout" in (exc.hint or "")
    assert os.listdir(tmp_path) == []
