"""TLS probes of a plugin's listener with Python's ``ssl`` (OpenSSL signs with any curve,
P-521 included, which grpcio's bundled BoringSSL cannot)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from . import h2
from .certs import KeyPair, der_to_pem


def connect(network: str, address: str, timeout: float) -> socket.socket:
    """A plain connection to the handshake's address."""
    if network == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
        return sock
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise OSError(f"not a host:port address: {address!r}")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)


def client_context(server_der: bytes, client: KeyPair | None, workdir: Path) -> ssl.SSLContext:
    """Trust exactly the plugin's certificate, name ``localhost``, ALPN h2, ``client`` as ours."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=der_to_pem(server_der).decode())
    context.set_alpn_protocols(["h2"])
    if client is not None:
        cert_file = workdir / f"client-{id(client)}.pem"
        key_file = workdir / f"client-{id(client)}.key"
        cert_file.write_bytes(client.cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(client.key_pem)
        try:
            context.load_cert_chain(cert_file, key_file)
        finally:
            key_file.unlink()
            cert_file.unlink()
    return context


def tls_socket(
    network: str, address: str, context: ssl.SSLContext, timeout: float
) -> ssl.SSLSocket:
    raw = connect(network, address, timeout)
    try:
        return context.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise


def tls_answers(
    network: str, address: str, context: ssl.SSLContext, timeout: float
) -> tuple[bool, str]:
    """(True, detail) when a TLS session with ``context`` reaches a live HTTP/2 server."""
    try:
        sock = tls_socket(network, address, context, timeout)
    except ssl.SSLError as exc:
        return False, f"TLS handshake failed: {exc.reason or exc}"
    except OSError as exc:
        return False, f"connection failed: {exc}"
    alpn = sock.selected_alpn_protocol()
    version = sock.version()
    if h2.settings_answer(sock, timeout):
        return True, f"{version}, ALPN {alpn}"
    return False, f"{version} handshake done, then the session was refused"


def plaintext_answers(network: str, address: str, timeout: float) -> bool:
    try:
        sock = connect(network, address, timeout)
    except OSError:
        return False
    return h2.settings_answer(sock, timeout)
