"""The TLS bridge under real grpcio, end to end:

    grpcio channel -> BridgeClient -> TLS (P-521 host certificate) -> BridgeServer -> grpcio server

PyPI grpcio cannot present or verify P-521 itself (docs/protocol.md, "AutoMTLS"); the bridges do
it with Python's ``ssl``. Also one bridge alone: native grpcio TLS (P-384) -> BridgeServer.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager

import grpc
import pytest
from cryptography import x509

from pyvider_rpcplugin_sync._transport.tls.bridge import BridgeClient, BridgeServer, listen
from pyvider_rpcplugin_sync._transport.tls.bridge_certs import go_style_identity
from pyvider_rpcplugin_sync._transport.tls.certs import (
    Identity,
    client_ssl_context,
    generate_identity,
    server_ssl_context,
)
from pyvider_rpcplugin_sync.examples import echo_pb2, echo_pb2_grpc, echo_plugin

pytestmark = pytest.mark.timeout(60)

CALL_TIMEOUT = 10.0


def cert(identity: Identity) -> x509.Certificate:
    return x509.load_pem_x509_certificate(identity.cert_pem)


@pytest.fixture
def sock_dir() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="tbg-")  # 0700, and short enough for sun_path
    yield directory
    shutil.rmtree(directory)


@contextmanager
def grpc_backend(directory: str) -> Iterator[str]:
    """A plaintext grpcio echo server on a private unix socket; yields its path."""
    path = os.path.join(directory, "grpc.sock")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    echo_plugin.register(server)
    server.add_insecure_port(f"unix:{path}")
    server.start()
    try:
        yield path
    finally:
        server.stop(None).wait()


@contextmanager
def plugin_side(
    directory: str, host: Identity, plugin: Identity, network: str = "tcp"
) -> Iterator[BridgeServer]:
    """grpcio server behind a BridgeServer that trusts exactly ``host``."""
    with grpc_backend(directory) as backend_path:
        address = os.path.join(directory, "public.sock") if network == "unix" else "127.0.0.1:0"
        context = server_ssl_context(plugin, cert(host))
        with BridgeServer(listen(network, address), backend_path, context) as bridge:
            yield bridge


@contextmanager
def host_channel(
    directory: str, server: BridgeServer, host: Identity, plugin: Identity
) -> Iterator[tuple[grpc.Channel, BridgeClient]]:
    context = client_ssl_context(host, cert(plugin))
    with (
        BridgeClient(server.network, server.address, context, directory) as bridge,
        grpc.insecure_channel(bridge.target) as channel,
    ):
        yield channel, bridge


def echo(channel: grpc.Channel, payload: bytes) -> bytes:
    stub = echo_pb2_grpc.EchoStub(channel)
    reply: bytes = stub.Echo(echo_pb2.EchoRequest(payload=payload), timeout=CALL_TIMEOUT).payload
    return reply


@pytest.mark.parametrize("network", ["tcp", "unix"])
@pytest.mark.parametrize("plugin_curve", ["secp256r1", "secp521r1"])
def test_unary_and_streaming_through_both_bridges(
    sock_dir: str, network: str, plugin_curve: str, caplog: pytest.LogCaptureFixture
) -> None:
    host = go_style_identity()  # P-521: what grpcio cannot present
    plugin = generate_identity() if plugin_curve == "secp256r1" else go_style_identity()
    with (
        plugin_side(sock_dir, host, plugin, network) as server,
        host_channel(sock_dir, server, host, plugin) as (channel, client),
    ):
        assert echo(channel, b"hello") == b"hello"
        big = os.urandom(1 << 20)
        assert echo(channel, big) == big
        stub = echo_pb2_grpc.EchoStub(channel)
        request = echo_pb2.StreamRequest(count=500, payload=b"s" * 100)
        replies = list(stub.Stream(request, timeout=CALL_TIMEOUT))
        assert len(replies) == 500 and all(r.payload == b"s" * 100 for r in replies)
        assert client.last_error is None
    # Closing the channel, then both bridges, then the server is not worth a warning.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_eight_threads_share_the_bridged_channel(sock_dir: str) -> None:
    host, plugin = go_style_identity(), generate_identity()
    errors: list[BaseException] = []

    def worker(channel: grpc.Channel, n: int) -> None:
        try:
            for i in range(200):
                payload = b"%d-%d" % (n, i)
                assert echo(channel, payload) == payload
        except BaseException as exc:
            errors.append(exc)

    with (
        plugin_side(sock_dir, host, plugin) as server,
        host_channel(sock_dir, server, host, plugin) as (channel, _client),
    ):
        threads = [threading.Thread(target=worker, args=(channel, n)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(CALL_TIMEOUT * 4)
    assert errors == []
    assert not any(t.is_alive() for t in threads)


def test_native_grpcio_tls_through_one_bridge_with_p384(sock_dir: str) -> None:
    """One bridge hop: grpcio speaks TLS itself (P-384 works for BoringSSL) to BridgeServer."""
    host, plugin = go_style_identity("secp384r1"), go_style_identity("secp384r1")
    with plugin_side(sock_dir, host, plugin) as server:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=plugin.cert_pem,
            private_key=host.key_pem,
            certificate_chain=host.cert_pem,
        )
        options = (("grpc.ssl_target_name_override", "localhost"),)
        with grpc.secure_channel(server.address, credentials, options) as channel:
            assert echo(channel, b"one hop") == b"one hop"


def test_foreign_host_is_refused_and_the_rightful_host_still_served(
    sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    host, plugin, intruder = go_style_identity(), generate_identity(), go_style_identity()
    with plugin_side(sock_dir, host, plugin) as server:
        with host_channel(sock_dir, server, intruder, plugin) as (channel, client):
            with pytest.raises(grpc.RpcError) as failure:
                echo(channel, b"let me in")
            assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
            assert client.last_error is not None
            assert "TLS handshake with the plugin" in client.last_error
            assert "rejected our certificate" in client.last_error
        assert server.wait_idle(CALL_TIMEOUT)
        refused = [
            r.getMessage()
            for r in caplog.records
            if r.name == "pyvider_rpcplugin_sync.tls" and r.levelno == logging.WARNING
        ]
        assert any("refused a TLS client" in m and "verify failed" in m for m in refused)
        with host_channel(sock_dir, server, host, plugin) as (channel, client):
            assert echo(channel, b"rightful") == b"rightful"
            assert client.last_error is None


def test_plugin_with_an_unexpected_certificate_is_not_trusted(sock_dir: str) -> None:
    host, plugin, impostor = go_style_identity(), generate_identity(), go_style_identity()
    with (
        plugin_side(sock_dir, host, impostor) as server,
        host_channel(sock_dir, server, host, plugin) as (channel, client),
    ):
        with pytest.raises(grpc.RpcError) as failure:
            echo(channel, b"secret")
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        assert client.last_error is not None
        assert "certificate verify failed" in client.last_error
