"""The minimal go-plugin plugin a user would write with raw grpcio: the cycle's baseline.

The echo service and grpc's health service on a unix socket in a private temp
dir, the handshake line ``1|1|unix|<path>|grpc|<base64 DER or empty>`` on stdout,
and an exit when stdin closes; nothing else (no controller, stdio or broker
service, no signal handling). With ``--tls`` it makes its certificate the way
AutoMTLS does (the same P-256 profile) and trusts only the host's, read from
``PLUGIN_CLIENT_CERT`` as go-plugin hands it over.

    python benchmarks/_minimal_plugin.py [--tls]

Run by path (not ``-m``): it imports grpc, grpc_health, the generated echo modules
and, for TLS, the certificate generator; nothing of the library's runtime.
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc


class EchoService(echo_pb2_grpc.EchoServicer):
    def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.ServicerContext
    ) -> echo_pb2.EchoResponse:
        return echo_pb2.EchoResponse(payload=request.payload)

    def Stream(
        self, request: echo_pb2.StreamRequest, context: grpc.ServicerContext
    ) -> Iterator[echo_pb2.EchoResponse]:
        reply = echo_pb2.EchoResponse(payload=request.payload)
        for _ in range(request.count):
            yield reply


def credentials() -> tuple[grpc.ServerCredentials, str]:
    from pyvider_rpcplugin_sync._transport.tls.certs import generate_identity

    identity = generate_identity()
    creds = grpc.ssl_server_credentials(
        [(identity.key_pem, identity.cert_pem)],
        root_certificates=os.environ["PLUGIN_CLIENT_CERT"].encode("ascii"),
        require_client_auth=True,
    )
    return creds, base64.b64encode(identity.cert_der).decode("ascii").rstrip("=")


def main(argv: list[str]) -> int:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    echo_pb2_grpc.add_EchoServicer_to_server(EchoService(), server)
    status = health.HealthServicer()
    status.set("plugin", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(status, server)
    creds, cert = credentials() if "--tls" in argv else (None, "")
    directory = tempfile.mkdtemp(prefix="minimal-grpc-")
    try:
        path = os.path.join(directory, "plugin.sock")
        if creds is None:
            server.add_insecure_port(f"unix:{path}")
        else:
            server.add_secure_port(f"unix:{path}", creds)
        server.start()
        os.write(1, f"1|1|unix|{path}|grpc|{cert}\n".encode())
        sys.stdin.buffer.read()  # the host closed our stdin: time to go
        server.stop(0).wait()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
