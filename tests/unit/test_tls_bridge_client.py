"""BridgeClient on real sockets: a plaintext client (standing in for grpcio) talks through
the bridge to a Python ``ssl`` server with a P-521 certificate (standing in for a Go
plugin), and through both bridges back to back."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import stat
import tempfile
import threading
from collections.abc import Iterator

import pytest
from test_tls_bridge_support import (
    IO_TIMEOUT,
    Backend,
    Identities,
    backend,
    cert,
    make_identities,
    open_fds,
)

from pyvider_rpcplugin_sync._errors import TransportError
from pyvider_rpcplugin_sync._transport.tls.bridge import BridgeClient, BridgeServer, listen
from pyvider_rpcplugin_sync._transport.tls.certs import client_ssl_context, server_ssl_context

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def ids() -> Identities:
    # Here the plugin is the Go-like (P-521) side and the host is ours (P-256).
    go_like = make_identities()
    return Identities(host=go_like.plugin, plugin=go_like.host, foreign=go_like.foreign)


@pytest.fixture
def sock_dir() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="tb-")
    yield directory
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)


class EchoTLSServer:
    """Blocking ``ssl`` echo server; each connection lives on one thread."""

    def __init__(self, context: ssl.SSLContext, network: str, directory: str) -> None:
        address = os.path.join(directory, "plugin.sock") if network == "unix" else "127.0.0.1:0"
        self.sock = listen(network, address)
        name = self.sock.getsockname()
        self.network = network
        self.address = name if network == "unix" else f"{name[0]}:{name[1]}"
        self.context = context
        self.peer_certs: list[bytes] = []
        self.errors: list[str] = []
        self.done = threading.Semaphore(0)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            raw.settimeout(IO_TIMEOUT)
            with self.context.wrap_socket(raw, server_side=True) as conn:
                self.peer_certs.append(conn.getpeercert(binary_form=True) or b"")
                assert conn.selected_alpn_protocol() == "h2"
                while data := conn.recv(65536):
                    conn.sendall(data)
        except (OSError, AssertionError) as exc:
            self.errors.append(str(exc))
        finally:
            raw.close()
            self.done.release()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(IO_TIMEOUT)


@contextlib.contextmanager
def tls_server(
    ids: Identities, network: str, directory: str, trusted_host: ssl.SSLContext | None = None
) -> Iterator[EchoTLSServer]:
    context = trusted_host or server_ssl_context(ids.plugin, cert(ids.host))
    server = EchoTLSServer(context, network, directory)
    try:
        yield server
    finally:
        server.close()


def plain_connect(bridge: BridgeClient) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(IO_TIMEOUT)
    sock.connect(bridge.path)
    return sock


def recv_until_closed(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize("network", ["tcp", "unix"])
def test_relays_to_a_p521_server_presenting_our_certificate(
    ids: Identities, sock_dir: str, network: str
) -> None:
    with tls_server(ids, network, sock_dir) as server:
        context = client_ssl_context(ids.host, cert(ids.plugin))
        with BridgeClient(server.network, server.address, context, sock_dir) as bridge:
            assert bridge.target == f"unix:{bridge.path}"
            assert stat.S_IMODE(os.stat(bridge.path).st_mode) == 0o600
            with plain_connect(bridge) as sock:
                sock.sendall(b"ping")
                assert sock.recv(100) == b"ping"
                sock.shutdown(socket.SHUT_WR)  # -> close_notify -> server's recv() == b""
                assert recv_until_closed(sock) == b""
            assert server.done.acquire(timeout=IO_TIMEOUT)
            assert bridge.wait_idle(IO_TIMEOUT)
            assert bridge.last_error is None
        assert not os.path.exists(bridge.path)
    assert server.errors == []
    assert server.peer_certs == [ids.host.cert_der]


def test_wrong_plugin_certificate_is_recorded_in_last_error(ids: Identities, sock_dir: str) -> None:
    with tls_server(ids, "tcp", sock_dir) as server:
        context = client_ssl_context(ids.host, cert(ids.foreign))
        with BridgeClient(server.network, server.address, context, sock_dir) as bridge:
            with plain_connect(bridge) as sock:
                sock.sendall(b"hello")
                assert recv_until_closed(sock) == b""
            assert bridge.wait_idle(IO_TIMEOUT)
            error = bridge.last_error
    assert error is not None
    assert f"TLS handshake with the plugin at tcp:{server.address} failed" in error
    assert "certificate verify failed" in error and "not the pinned certificate" in error


def test_plugin_refusing_our_certificate_is_recorded_in_last_error(
    ids: Identities, sock_dir: str
) -> None:
    distrustful = server_ssl_context(ids.plugin, cert(ids.foreign))
    with tls_server(ids, "unix", sock_dir, distrustful) as server:
        context = client_ssl_context(ids.host, cert(ids.plugin))
        with BridgeClient(server.network, server.address, context, sock_dir) as bridge:
            with plain_connect(bridge) as sock:
                assert recv_until_closed(sock) == b""
            assert bridge.wait_idle(IO_TIMEOUT)
            assert bridge.last_error is not None
            assert "the peer rejected our certificate (unknown ca)" in bridge.last_error


@pytest.mark.parametrize("network", ["tcp", "unix"])
def test_unreachable_plugin_is_recorded_in_last_error(
    ids: Identities, sock_dir: str, network: str
) -> None:
    if network == "tcp":
        with listen("tcp", "127.0.0.1:0") as probe:
            address = f"127.0.0.1:{probe.getsockname()[1]}"  # closed again below
    else:
        address = os.path.join(sock_dir, "gone.sock")
    context = client_ssl_context(ids.host, cert(ids.plugin))
    with BridgeClient(network, address, context, sock_dir) as bridge:
        with plain_connect(bridge) as sock:
            assert recv_until_closed(sock) == b""
        assert bridge.wait_idle(IO_TIMEOUT)
        assert bridge.last_error is not None
    assert bridge.last_error.startswith(f"could not connect to the plugin at {network}:{address}")


def test_socket_path_over_the_limit_is_a_transport_error(ids: Identities, sock_dir: str) -> None:
    deep = os.path.join(sock_dir, "d" * 100)
    os.mkdir(deep)
    try:
        context = client_ssl_context(ids.host, cert(ids.plugin))
        with pytest.raises(TransportError, match="over the 107-byte limit"):
            BridgeClient("tcp", "127.0.0.1:1", context, deep)
        assert os.listdir(deep) == []
    finally:
        os.rmdir(deep)


def test_client_context_must_verify_the_plugin(sock_dir: str) -> None:
    lax = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="verifies"):
        BridgeClient("tcp", "127.0.0.1:1", lax, sock_dir)
    assert os.listdir(sock_dir) == []


# --- both bridges back to back: plaintext -> BridgeClient -> TLS -> BridgeServer -> plaintext


@contextlib.contextmanager
def chain(ids: Identities, directory: str) -> Iterator[tuple[BridgeClient, BridgeServer, Backend]]:
    with backend(directory) as be:
        server_context = server_ssl_context(ids.plugin, cert(ids.host))
        public = listen("tcp", "127.0.0.1:0")
        with BridgeServer(public, be.path, server_context) as server:
            context = client_ssl_context(ids.host, cert(ids.plugin))
            with BridgeClient(server.network, server.address, context, directory) as client:
                yield client, server, be
            assert server.wait_idle(IO_TIMEOUT)
            assert be.wait_idle()


def test_both_bridges_carry_8_mib_each_way_at_once(ids: Identities, sock_dir: str) -> None:
    payload = os.urandom(8 << 20)
    with chain(ids, sock_dir) as (client, _server, _be), plain_connect(client) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        received = bytearray()
        while len(received) < len(payload):
            chunk = sock.recv(1 << 20)
            assert chunk, f"closed after {len(received)} bytes"
            received += chunk
        sender.join(IO_TIMEOUT)
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1) == b"", "EOF travels back through both bridges"
    assert bytes(received) == payload


def test_200_connections_through_both_bridges_leak_nothing(ids: Identities, sock_dir: str) -> None:
    with chain(ids, sock_dir) as (client, server, be):
        with plain_connect(client) as warm:
            warm.sendall(b"warm")
            assert warm.recv(10) == b"warm"
        assert client.wait_idle(IO_TIMEOUT) and server.wait_idle(IO_TIMEOUT) and be.wait_idle()
        before = open_fds()
        for i in range(200):
            with plain_connect(client) as sock:
                sock.sendall(b"%d" % i)
                assert sock.recv(10) == b"%d" % i
                if i % 2:
                    sock.shutdown(socket.SHUT_WR)
                    assert sock.recv(1) == b""
        assert client.wait_idle(IO_TIMEOUT) and server.wait_idle(IO_TIMEOUT) and be.wait_idle()
        assert open_fds() <= before
        assert client.last_error is None
