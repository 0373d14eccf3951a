"""Brokered connections with a P-521 peer (every Go go-plugin peer under AutoMTLS).

PyPI grpcio cannot present or verify P-521, so our brokered servers and channels
use the ``ssl`` bridge for such a peer, mutual and pinned. The Go peer is played
by Python's ``ssl`` with a Go-style certificate: a BridgeClient dialing our
brokered server, a BridgeServer that our broker dials.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from cryptography import x509

from pyvider_rpcplugin_sync import Broker
from pyvider_rpcplugin_sync._broker.net import BrokerNetwork
from pyvider_rpcplugin_sync._constants import ENV_UNIX_SOCKET_DIR
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc
from pyvider_rpcplugin_sync._protos.goplugin_pb2 import ConnInfo
from pyvider_rpcplugin_sync._transport.dial import SessionSecurity
from pyvider_rpcplugin_sync._transport.tls.bridge import BridgeClient, BridgeServer, listen
from pyvider_rpcplugin_sync._transport.tls.bridge_certs import go_style_identity
from pyvider_rpcplugin_sync._transport.tls.certs import (
    Identity,
    client_ssl_context,
    generate_identity,
    server_ssl_context,
)
from pyvider_rpcplugin_sync.examples import echo_plugin

pytestmark = pytest.mark.timeout(60)


def cert(identity: Identity) -> x509.Certificate:
    return x509.load_pem_x509_certificate(identity.cert_pem)


@pytest.fixture
def sock_dir() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="tbb-")  # 0700, short enough for sun_path
    yield directory
    shutil.rmtree(directory)


def session(ours: Identity, peer: Identity, directory: str, transport: str) -> Broker:
    broker = Broker("host")
    security = SessionSecurity(ours, cert(peer))
    assert security.bridged
    broker._attach(BrokerNetwork(transport, {ENV_UNIX_SOCKET_DIR: directory}, security))
    return broker


def echo(channel: grpc.Channel, payload: bytes) -> bytes:
    stub = echo_pb2_grpc.EchoStub(channel)
    reply: bytes = stub.Echo(echo_pb2.EchoRequest(payload=payload), timeout=10).payload
    return reply


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_a_p521_peer_dials_our_brokered_server(sock_dir: str, transport: str) -> None:
    ours, go_peer, stranger = generate_identity(), go_style_identity(), go_style_identity()
    broker = session(ours, go_peer, sock_dir, transport)
    try:
        served = broker.accept_and_serve(1, echo_plugin.register)
        assert served.network == transport
        if transport == "unix":
            assert os.path.dirname(served.address) == sock_dir
        context = client_ssl_context(go_peer, cert(ours))
        with (
            BridgeClient(served.network, served.address, context, sock_dir) as client,
            grpc.insecure_channel(client.target) as channel,
        ):
            assert echo(channel, b"callback") == b"callback"
        # Pinned: a P-521 client with another certificate is refused by our server.
        context = client_ssl_context(stranger, cert(ours))
        with (
            BridgeClient(served.network, served.address, context, sock_dir) as client,
            grpc.insecure_channel(client.target) as channel,
        ):
            with pytest.raises(grpc.RpcError) as refused:
                echo(channel, b"x")
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        broker.close()
    assert served.stopped
    assert os.listdir(sock_dir) == []


def test_our_broker_dials_a_p521_peers_server(sock_dir: str) -> None:
    ours, go_peer, impostor = generate_identity(), go_style_identity(), go_style_identity()
    broker = session(ours, go_peer, sock_dir, "unix")
    backend = os.path.join(sock_dir, "backend.sock")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    echo_plugin.register(server)
    server.add_insecure_port(f"unix:{backend}")
    server.start()
    try:
        for service_id, identity, works in ((3, go_peer, True), (4, impostor, False)):
            public = os.path.join(sock_dir, f"peer-{service_id}.sock")
            context = server_ssl_context(identity, cert(ours))
            with BridgeServer(listen("unix", public), backend, context) as peer:
                broker._receive(ConnInfo(service_id=service_id, network="unix", address=public))
                with broker.dial(service_id) as channel:
                    if works:
                        assert echo(channel, b"hi") == b"hi"
                    else:  # the server's certificate is not the one pinned
                        with pytest.raises(grpc.RpcError) as refused:
                            echo(channel, b"hi")
                        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                assert peer.wait_idle(10)
    finally:
        broker.close()
        server.stop(None).wait()
