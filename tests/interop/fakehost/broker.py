"""The newest go-plugin host's side of the GRPCBroker: ``AcceptAndServe`` (grpc_broker.go).

Since go-plugin 1.4.4 (issue 109) a host serves brokered connections with its AutoMTLS
identity and requires the plugin's certificate; the listener is a fresh unix socket
in the host's socket directory. The ConnInfo goes to the plugin over the host's
``StartStream`` (``FakeNewestHost.broker_send``).
"""

from __future__ import annotations

import os
import secrets
import ssl
from collections.abc import Callable
from concurrent import futures

import grpc

from .host import FakeNewestHost


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def encode_conn_info(service_id: int, network: str, address: str) -> bytes:
    """``plugin.ConnInfo{service_id=1, network=2, address=3}`` in protobuf wire format."""
    message = b"\x08" + _varint(service_id)
    for number, text in ((2, network), (3, address)):
        data = text.encode()
        message += bytes([number << 3 | 2]) + _varint(len(data)) + data
    return message


def accept_and_serve(
    host: FakeNewestHost, service_id: int, register: Callable[[grpc.Server], None]
) -> grpc.Server:
    """Serve ``register``'s services for ``service_id`` and announce them; stop() when done."""
    assert host.socket_dir is not None and host.parsed is not None
    path = os.path.join(host.socket_dir, f"plugin{secrets.randbelow(10**9)}")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    register(server)
    if host.auto_mtls:
        identity = host._host_identity()
        assert host.parsed.server_cert_der is not None
        plugin_pem = ssl.DER_cert_to_PEM_cert(host.parsed.server_cert_der).encode("ascii")
        credentials = grpc.ssl_server_credentials(
            [(identity.key_pem, identity.cert_pem)],
            root_certificates=plugin_pem,
            require_client_auth=True,
        )
        server.add_secure_port(f"unix:{path}", credentials)
    else:
        server.add_insecure_port(f"unix:{path}")
    server.start()
    host.broker_send(encode_conn_info(service_id, "unix", path))
    return server
