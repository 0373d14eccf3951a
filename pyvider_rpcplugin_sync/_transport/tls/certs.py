"""AutoMTLS certificates and grpcio credentials (docs/protocol.md, "AutoMTLS").

Certificates follow go-plugin's profile (mtls.go) but with ECDSA P-256:
PyPI grpcio's BoringSSL cannot handshake with P-521 keys. ``cryptography`` is
imported here only, and this module only when TLS is on.
"""

from __future__ import annotations

import datetime
import errno
import os
import secrets
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..._constants import TLS_SERVER_NAME
from ..._errors import TLSError
from ..._protocol.handshake import decode_cert_field

# Short-lived on purpose: a new certificate is made for every process start.
CERT_VALIDITY = datetime.timedelta(days=1)
CLOCK_SKEW = datetime.timedelta(seconds=30)
# Curves grpcio (BoringSSL) signs and verifies with in TLS 1.3.
NATIVE_CURVES = ("secp256r1", "secp384r1")


@dataclass(frozen=True)
class Identity:
    """A certificate and its private key, PEM-encoded; the key never leaves the process."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)

    @property
    def cert_der(self) -> bytes:
        return x509.load_pem_x509_certificate(self.cert_pem).public_bytes(
            serialization.Encoding.DER
        )


# Curve name -> (curve, the digest a certificate on it is signed with), as go-plugin pairs them.
CURVES: dict[str, tuple[ec.EllipticCurve, hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "secp256r1": (ec.SECP256R1(), hashes.SHA256()),
    "secp384r1": (ec.SECP384R1(), hashes.SHA384()),
    "secp521r1": (ec.SECP521R1(), hashes.SHA512()),
}


def generate_identity() -> Identity:
    """A fresh self-signed P-256 certificate for ``localhost`` (and 127.0.0.1)."""
    import ipaddress

    return self_signed_identity(
        "secp256r1", CERT_VALIDITY, extra_names=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )


def self_signed_identity(
    curve: str,
    validity: datetime.timedelta,
    *,
    extra_names: Sequence[x509.GeneralName] = (),
) -> Identity:
    """A self-signed ``localhost`` certificate with go-plugin's AutoMTLS profile (mtls.go)."""
    try:
        ec_curve, digest = CURVES[curve]
    except KeyError:
        raise ValueError(f"unknown curve {curve!r}; use one of {sorted(CURVES)}") from None
    key = ec.generate_private_key(ec_curve)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
            x509.NameAttribute(NameOID.COMMON_NAME, TLS_SERVER_NAME),
        ]
    )
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=True,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH])
    sans = x509.SubjectAlternativeName([x509.DNSName(TLS_SERVER_NAME), *extra_names])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(secrets.randbits(127) | 1)
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(sans, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(eku, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, digest)
    )
    return Identity(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def load_peer_certificate(pem: bytes | str, *, source: str) -> x509.Certificate:
    """Parse and check a peer certificate; a clear TLSError names what is wrong."""
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise TLSError(
            f"{source} is not a valid PEM certificate: {exc}",
            hint="it must be one '-----BEGIN CERTIFICATE-----' block",
        ) from None
    _check_validity(cert, source)
    return cert


def peer_certificate_from_field(cert_field: str) -> x509.Certificate:
    """The plugin's certificate from handshake field 6 (RawStd base64 DER)."""
    der = decode_cert_field(cert_field)
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise TLSError(
            f"error parsing server cert: {exc}",
            hint="field 6 must be the base64 DER of one X.509 certificate",
        ) from None
    _check_validity(cert, "the plugin's certificate")
    return cert


def _check_validity(cert: x509.Certificate, source: str) -> None:
    now = datetime.datetime.now(datetime.UTC)
    if not cert.not_valid_before_utc - CLOCK_SKEW <= now <= cert.not_valid_after_utc:
        raise TLSError(
            f"{source} is not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d %H:%M} "
            f"to {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)",
            hint="check the system clock, or generate a fresh certificate",
        )


def curve_name(cert: x509.Certificate) -> str | None:
    key = cert.public_key()
    return key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else None


def needs_bridge(cert: x509.Certificate) -> bool:
    """True when grpcio's BoringSSL cannot do TLS with this peer (P-521, as Go's AutoMTLS)."""
    name = curve_name(cert)
    return name is not None and name not in NATIVE_CURVES


def pem_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def plugin_server_credentials(
    host_cert: x509.Certificate, identity: Identity
) -> grpc.ServerCredentials:
    """Plugin side, native grpcio TLS: present ``identity``, require the host's certificate."""
    return grpc.ssl_server_credentials(
        [(identity.key_pem, identity.cert_pem)],
        root_certificates=pem_of(host_cert),
        require_client_auth=True,
    )


def host_channel_credentials(
    plugin_cert: x509.Certificate, identity: Identity
) -> grpc.ChannelCredentials:
    """Host side: trust exactly the plugin's certificate and present our own."""
    return grpc.ssl_channel_credentials(
        root_certificates=pem_of(plugin_cert),
        private_key=identity.key_pem,
        certificate_chain=identity.cert_pem,
    )


# --- ssl.SSLContext builders for the TLS bridge (bridge.py) ----------------


def server_ssl_context(identity: Identity, trusted_peer_cert: x509.Certificate) -> ssl.SSLContext:
    """Plugin side of the bridge: present ``identity``, require a client certificate
    that verifies against exactly ``trusted_peer_cert`` (the host's), ALPN ``h2``, TLS 1.2+."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.verify_mode = ssl.CERT_REQUIRED
    # Every gRPC connection lives long and is never resumed: no session tickets.
    context.num_tickets = 0
    return _pinned_context(context, identity, trusted_peer_cert)


def client_ssl_context(identity: Identity, trusted_peer_cert: x509.Certificate) -> ssl.SSLContext:
    """Host side of the bridge: present ``identity``, trust exactly ``trusted_peer_cert``
    (the plugin's) for the name ``localhost`` (pass ``server_hostname=TLS_SERVER_NAME``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    return _pinned_context(context, identity, trusted_peer_cert)


def _pinned_context(
    context: ssl.SSLContext, identity: Identity, trusted_peer_cert: x509.Certificate
) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # The peer's self-signed certificate is the only trust anchor.
    context.load_verify_locations(cadata=pem_of(trusted_peer_cert).decode("ascii"))
    context.set_alpn_protocols(["h2"])
    _load_identity(context, identity)
    return context


def _load_identity(context: ssl.SSLContext, identity: Identity) -> None:
    """``load_cert_chain`` reads files only: hand it pipes, so the key never touches a disk."""
    fds: list[int] = []
    try:
        paths = []
        for pem in (identity.cert_pem, identity.key_pem):
            read_fd, write_fd = os.pipe()
            fds += (read_fd, write_fd)
            os.write(write_fd, pem)  # a few hundred bytes: far below the pipe's capacity
            os.close(fds.pop())
            paths.append(f"/dev/fd/{read_fd}")
        if not all(os.path.exists(path) for path in paths):
            raise OSError("/dev/fd is not available")
        context.load_cert_chain(paths[0], paths[1])
    except (OSError, ssl.SSLError) as exc:
        raise TLSError(
            f"could not load our TLS certificate into the ssl module: {exc}",
            hint="the TLS bridge needs /dev/fd (Linux, macOS)",
        ) from None
    finally:
        for fd in fds:
            os.close(fd)


# OpenSSL reasons worth saying in words; the rest are shown as OpenSSL names them.
_SSL_REASONS = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "the client presented no certificate",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the peer requires a client certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the peer rejected our certificate (unknown ca)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the peer rejected our certificate (bad certificate)",
    "WRONG_VERSION_NUMBER": "not TLS: the peer sent plaintext",
    "HTTP_REQUEST": "not TLS: the peer sent a plaintext HTTP request",
    "UNEXPECTED_EOF_WHILE_READING": "the connection closed during the TLS handshake",
    "NO_SUITABLE_SIGNATURE_ALGORITHM": "no common signature algorithm (certificate curve?)",
}

# X509_V_ERR_* codes meaning "not signed by the one certificate we trust".
_NOT_PINNED_CODES = frozenset({18, 19, 20, 21})


def describe_ssl_error(exc: BaseException) -> str:
    """A one-line reason for a failed TLS connection, without key material."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        if exc.verify_code in _NOT_PINNED_CODES:
            return f"certificate verify failed ({exc.verify_message}: not the pinned certificate)"
        return f"certificate verify failed ({exc.verify_message})"
    if isinstance(exc, ssl.SSLEOFError):
        return _SSL_REASONS["UNEXPECTED_EOF_WHILE_READING"]
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if reason in _SSL_REASONS:
            return _SSL_REASONS[reason]
        return reason.lower().replace("_", " ") or str(exc)
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{exc.strerror or errno.errorcode.get(exc.errno, exc.errno)}"
    return str(exc) or type(exc).__name__
