"""The raw grpcio baseline server: the echo servicer on a hand-written grpc server.

No library on the serving path: ``grpc.server(ThreadPoolExecutor)`` with the
worker count and options the library's plugin server uses, the same two
handler methods as ``pyvider_rpcplugin_sync.examples.echo_plugin``, bound to a
unix socket in a private temp dir or to 127.0.0.1:0, optionally with grpcio's
own mutual TLS (P-256 both sides). It prints one line and serves until killed:

    <network>|<address>|<base64 DER of its certificate, or empty>

    python benchmarks/_raw_server.py --transport unix|tcp [--tls]

With ``--tls`` the host's certificate (PEM) is read from ``RAW_CLIENT_CERT``.
Run by path (not ``-m``): it imports only grpc, the generated echo modules and,
for TLS, the certificate generator.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc

from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

# The plugin server's pool: DEFAULT_MAX_WORKERS + RESERVED_STREAM_WORKERS (_constants.py),
# and its server options: DEFAULT_MAX_MESSAGE_SIZE both ways, no SO_REUSEPORT
# (PluginServer). Written out so this program imports nothing else.
MAX_WORKERS = 16 + 2
SERVER_OPTIONS: tuple[tuple[str, object], ...] = (
    ("grpc.max_send_message_length", 2**31 - 1),
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.so_reuseport", 0),
)
STOP_GRACE = 0.5  # DEFAULT_STOP_GRACE
CLIENT_CERT_ENV = "RAW_CLIENT_CERT"


class EchoService(echo_pb2_grpc.EchoServicer):
    """The same two methods as the example plugin's EchoService."""

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
        root_certificates=os.environ[CLIENT_CERT_ENV].encode("ascii"),
        require_client_auth=True,
    )
    return creds, base64.b64encode(identity.cert_der).decode("ascii")


def main(argv: list[str]) -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=("unix", "tcp"), default="unix")
    parser.add_argument("--tls", action="store_true")
    args = parser.parse_args(argv)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=MAX_WORKERS), options=SERVER_OPTIONS
    )
    echo_pb2_grpc.add_EchoServicer_to_server(EchoService(), server)
    creds, cert_field = credentials() if args.tls else (None, "")
    directory = tempfile.mkdtemp(prefix="raw-grpc-") if args.transport == "unix" else None
    try:
        if directory is not None:
            address = os.path.join(directory, "echo.sock")
            target = f"unix:{address}"
        else:
            address, target = "", "127.0.0.1:0"
        port = server.add_secure_port(target, creds) if creds else server.add_insecure_port(target)
        if directory is None:
            address = f"127.0.0.1:{port}"
        server.start()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
        os.write(1, f"{args.transport}|{address}|{cert_field}\n".encode())
        stop.wait()
        # As the plugin server stops: a graceful GOAWAY, in-flight calls get STOP_GRACE.
        server.stop(STOP_GRACE).wait()
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
