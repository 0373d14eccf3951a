"""BridgeServer on real sockets: a Python ``ssl`` client with a P-521 certificate (as a
Go host's) talks through the bridge to a plaintext unix-socket backend."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_tls_bridge_support import (
    IO_TIMEOUT,
    Identities,
    TLSClient,
    backend,
    cert,
    connect,
    digest_then_reply,
    make_identities,
    open_fds,
)

from pyvider_rpcplugin_sync._transport.tls.bridge import BridgeServer, listen
from pyvider_rpcplugin_sync._transport.tls.certs import client_ssl_context, server_ssl_context

pytestmark = pytest.mark.timeout(60)

TLS_LOGGER = "pyvider_rpcplugin_sync.tls"


@pytest.fixture(scope="module")
def ids() -> Identities:
    return make_identities()


@pytest.fixture
def sock_dir() -> Iterator[str]:
    # Short paths: pytest's tmp_path can exceed the 107-byte unix socket limit.
    import tempfile

    directory = tempfile.mkdtemp(prefix="tb-")
    yield directory
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)


def make_bridge(ids: Identities, backend_path: str, network: str, directory: str) -> BridgeServer:
    address = os.path.join(directory, "public.sock") if network == "unix" else "127.0.0.1:0"
    context = server_ssl_context(ids.plugin, cert(ids.host))
    bridge = BridgeServer(listen(network, address), backend_path, context)
    bridge.start()
    return bridge


def host_context(ids: Identities) -> ssl.SSLContext:
    return client_ssl_context(ids.host, cert(ids.plugin))


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == TLS_LOGGER and r.levelno == logging.WARNING
    ]


@pytest.mark.parametrize("network", ["tcp", "unix"])
def test_echo_with_p521_client_certificate(ids: Identities, sock_dir: str, network: str) -> None:
    with backend(sock_dir) as be, make_bridge(ids, be.path, network, sock_dir) as bridge:
        assert bridge.network == network
        with TLSClient.open(bridge.network, bridge.address, host_context(ids)) as client:
            assert client.obj.version() == "TLSv1.3"
            assert client.obj.selected_alpn_protocol() == "h2"
            for message in (b"hello", b"x" * 100_000):
                client.send(message)
                got = b""
                while len(got) < len(message):
                    got += client.recv()
                assert got == message
    if network == "unix":
        assert not os.path.exists(bridge.address), "the bridge removes its socket file"


def test_tls_1_2_peer_is_served(ids: Identities, sock_dir: str) -> None:
    context = host_context(ids)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        backend(sock_dir) as be,
        make_bridge(ids, be.path, "tcp", sock_dir) as bridge,
        TLSClient.open(bridge.network, bridge.address, context) as client,
    ):
        assert client.obj.version() == "TLSv1.2"
        assert client.obj.selected_alpn_protocol() == "h2"
        client.send(b"twelve")
        assert client.recv() == b"twelve"


def test_ssl_contexts_pin_the_peer_and_leave_no_key_behind(ids: Identities) -> None:
    tmp = tempfile.gettempdir()  # the suite's private TMPDIR: nothing else writes there
    before, tmp_before = open_fds(), set(os.listdir(tmp))
    server = server_ssl_context(ids.plugin, cert(ids.host))
    client = client_ssl_context(ids.host, cert(ids.plugin))
    assert open_fds() <= before, "the pipes that carried the key are closed"
    assert set(os.listdir(tmp)) - tmp_before == set(), "no key file was written"
    for context in (server, client):
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        assert len(context.get_ca_certs()) == 1  # exactly the peer's certificate
    assert client.check_hostname
    serial = server.get_ca_certs()[0]["serialNumber"]
    assert int(str(serial), 16) == cert(ids.host).serial_number


def assert_refused_then_serving(
    ids: Identities, bridge: BridgeServer, caplog: pytest.LogCaptureFixture, expected: str
) -> None:
    assert bridge.wait_idle(IO_TIMEOUT)
    messages = refusals(caplog)
    assert any(m.startswith("refused a TLS client") and expected in m for m in messages), messages
    assert not any("BEGIN" in m for m in messages), "no PEM in logs"
    with TLSClient.open(bridge.network, bridge.address, host_context(ids)) as client:
        client.send(b"still serving")
        assert client.recv() == b"still serving"


def test_foreign_client_certificate_is_refused(
    ids: Identities, sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    foreign = client_ssl_context(ids.foreign, cert(ids.plugin))
    with backend(sock_dir) as be, make_bridge(ids, be.path, "tcp", sock_dir) as bridge:
        with (
            pytest.raises(ssl.SSLError, match="UNKNOWN_CA"),
            TLSClient.open(bridge.network, bridge.address, foreign) as client,
        ):
            client.recv()  # TLS 1.3: the server's verdict arrives after our Finished
        assert_refused_then_serving(ids, bridge, caplog, "certificate verify failed")
        assert be.accepted == 1, "only the rightful client reached the backend"


def test_client_without_certificate_is_refused(
    ids: Identities, sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.load_verify_locations(cadata=ids.plugin.cert_pem.decode())
    with backend(sock_dir) as be, make_bridge(ids, be.path, "unix", sock_dir) as bridge:
        with (
            pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"),
            TLSClient.open(bridge.network, bridge.address, anonymous) as client,
        ):
            client.recv()
        assert_refused_then_serving(ids, bridge, caplog, "presented no certificate")


def test_client_that_distrusts_the_server_is_refused(
    ids: Identities, sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong_pin = client_ssl_context(ids.host, cert(ids.foreign))
    with backend(sock_dir) as be, make_bridge(ids, be.path, "tcp", sock_dir) as bridge:
        with (
            pytest.raises(ssl.SSLCertVerificationError),
            TLSClient.open(bridge.network, bridge.address, wrong_pin),
        ):
            pass
        assert_refused_then_serving(ids, bridge, caplog, "unknown ca")


@pytest.mark.parametrize(
    ("opening", "expected"),
    [(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "not TLS"), (b"GET / HTTP/1.1\r\n\r\n", "not TLS")],
    ids=["h2-preface", "http1"],
)
def test_plaintext_client_is_refused(
    ids: Identities, sock_dir: str, caplog: pytest.LogCaptureFixture, opening: bytes, expected: str
) -> None:
    with backend(sock_dir) as be, make_bridge(ids, be.path, "tcp", sock_dir) as bridge:
        with connect(bridge.network, bridge.address) as sock:
            sock.sendall(opening)
            assert sock.recv(4096) == b"", "closed without sending anything back"
        assert_refused_then_serving(ids, bridge, caplog, expected)


def test_silent_client_is_dropped_at_the_handshake_deadline(
    ids: Identities, sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    context = server_ssl_context(ids.plugin, cert(ids.host))
    with backend(sock_dir) as be:
        listener = listen("tcp", "127.0.0.1:0")
        with BridgeServer(listener, be.path, context, handshake_timeout=0.2) as bridge:
            with connect(bridge.network, bridge.address) as sock:
                assert sock.recv(1) == b""
            assert_refused_then_serving(ids, bridge, caplog, "no TLS handshake before the deadline")


def test_unreachable_backend_closes_the_connection_with_a_warning(
    ids: Identities, sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    missing = os.path.join(sock_dir, "nobody-listens")
    with make_bridge(ids, missing, "tcp", sock_dir) as bridge:
        with TLSClient.open(bridge.network, bridge.address, host_context(ids)) as client:
            assert client.recv() == b""
        assert bridge.wait_idle(IO_TIMEOUT)
    assert any("could not reach the gRPC server" in m for m in refusals(caplog))


@pytest.mark.parametrize("network", ["tcp", "unix"])
def test_8_mib_both_ways_at_once(ids: Identities, sock_dir: str, network: str) -> None:
    payload = os.urandom(8 << 20)
    with (
        backend(sock_dir) as be,
        make_bridge(ids, be.path, network, sock_dir) as bridge,
        TLSClient.open(bridge.network, bridge.address, host_context(ids)) as client,
    ):
        assert client.exchange(payload) == payload


def test_client_half_close_delivers_eof_and_the_reply_still_flows(
    ids: Identities, sock_dir: str
) -> None:
    import hashlib

    payload = os.urandom(3 << 20)
    with (
        backend(sock_dir, digest_then_reply) as be,
        make_bridge(ids, be.path, "tcp", sock_dir) as bridge,
    ):
        with TLSClient.open(bridge.network, bridge.address, host_context(ids)) as client:
            client.send(payload)
            client.close_write()  # close_notify: the backend must see EOF
            reply = client.recv_until_eof()
        assert reply == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}".encode()
        assert bridge.wait_idle(IO_TIMEOUT)


def test_backend_half_close_sends_close_notify_and_client_data_still_flows(
    ids: Identities, sock_dir: str
) -> None:
    received: list[bytes] = []

    def greet_then_listen(conn: socket.socket) -> None:
        conn.sendall(b"greeting")
        conn.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        received.append(data)

    with (
        backend(sock_dir, greet_then_listen) as be,
        make_bridge(ids, be.path, "unix", sock_dir) as bridge,
    ):
        with TLSClient.open(bridge.network, bridge.address, host_context(ids)) as client:
            assert client.recv_until_eof() == b"greeting"  # then close_notify
            client.send(b"after the server's EOF")
            client.close_write()
            assert be.wait_idle()
        assert bridge.wait_idle(IO_TIMEOUT)
    assert received == [b"after the server's EOF"]


def test_peer_closing_without_close_notify_is_a_quiet_eof(
    ids: Identities, sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    with backend(sock_dir) as be, make_bridge(ids, be.path, "tcp", sock_dir) as bridge:
        with TLSClient.open(bridge.network, bridge.address, host_context(ids)) as client:
            client.send(b"bye")
            assert client.recv() == b"bye"
            client.sock.shutdown(socket.SHUT_WR)  # TCP EOF, no TLS close_notify
            while client.sock.recv(65536):  # whatever TLS says, then the close
                pass
        assert bridge.wait_idle(IO_TIMEOUT) and be.wait_idle()
    assert refusals(caplog) == []


def test_200_connections_leak_no_descriptor(
    ids: Identities, sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    with backend(sock_dir) as be, make_bridge(ids, be.path, "tcp", sock_dir) as bridge:
        context = host_context(ids)
        with TLSClient.open(bridge.network, bridge.address, context) as warm:
            warm.send(b"warm")
            assert warm.recv() == b"warm"
            warm.close_write()
            assert warm.recv_until_eof() == b""
        assert bridge.wait_idle(IO_TIMEOUT) and be.wait_idle()
        before = open_fds()
        for i in range(200):
            with TLSClient.open(bridge.network, bridge.address, context) as client:
                client.send(b"%d" % i)
                assert client.recv() == b"%d" % i
                if i % 2:
                    client.close_write()  # clean TLS close
                    assert client.recv_until_eof() == b""
                # else: the socket just closes (no close_notify)
        assert bridge.wait_idle(IO_TIMEOUT) and be.wait_idle()
        assert bridge.active_connections == 0
        assert open_fds() <= before
        assert be.accepted == 201
    assert refusals(caplog) == []


def test_close_joins_the_thread_closes_connections_and_is_idempotent(
    ids: Identities, sock_dir: str
) -> None:
    before_threads = set(threading.enumerate())
    with backend(sock_dir) as be:
        bridge = make_bridge(ids, be.path, "unix", sock_dir)
        (loop_thread,) = set(threading.enumerate()) - before_threads - {be._thread}
        with TLSClient.open(bridge.network, bridge.address, host_context(ids)) as client:
            client.send(b"x")
            assert client.recv() == b"x"
            closers = [threading.Thread(target=bridge.close) for _ in range(4)]
            for t in closers:
                t.start()
            for t in closers:
                t.join(IO_TIMEOUT)
            assert not loop_thread.is_alive()
            assert client.sock.recv(1) == b"", "open connections are closed"
        bridge.close()
        assert bridge.active_connections == 0
        assert not Path(bridge.address).exists()
        with pytest.raises(OSError):
            connect(bridge.network, bridge.address)
        with pytest.raises(RuntimeError, match="closed"):
            bridge.start()


def test_close_without_start_releases_the_listener(ids: Identities, sock_dir: str) -> None:
    before = open_fds()
    listener = listen("tcp", "127.0.0.1:0")
    bridge = BridgeServer(listener, "/nonexistent", server_ssl_context(ids.plugin, cert(ids.host)))
    bridge.close()
    bridge.close()
    assert listener.fileno() == -1
    assert open_fds() <= before


def test_server_context_must_require_client_certificates(ids: Identities) -> None:
    lax = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with listen("tcp", "127.0.0.1:0") as listener, pytest.raises(ValueError, match="require"):
        BridgeServer(listener, "/nonexistent", lax)
