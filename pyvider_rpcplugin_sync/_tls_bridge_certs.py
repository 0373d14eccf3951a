"""Certificates with go-plugin's exact AutoMTLS profile (mtls.go), on any NIST curve.

Our own identities are P-256 (``_tls.generate_identity``). This module makes the
certificates a Go peer makes: ECDSA P-521 signed with SHA-512 by default, so tests and
benchmarks can stand in for a Go host or plugin without Go (protocol.md §3.2).
"""

from __future__ import annotations

import datetime
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ._constants import TLS_SERVER_NAME
from ._tls import Identity

# mtls.go: NotBefore = now - 30 s, NotAfter = now + 262980 h (about 30 years).
GO_CLOCK_SKEW = datetime.timedelta(seconds=30)
GO_VALIDITY = datetime.timedelta(hours=262980)

_CURVES: dict[str, tuple[ec.EllipticCurve, hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "secp256r1": (ec.SECP256R1(), hashes.SHA256()),
    "secp384r1": (ec.SECP384R1(), hashes.SHA384()),
    "secp521r1": (ec.SECP521R1(), hashes.SHA512()),
}


def go_style_identity(curve: str = "secp521r1") -> Identity:
    """A fresh self-signed ``localhost`` certificate as go-plugin's AutoMTLS makes it."""
    try:
        ec_curve, digest = _CURVES[curve]
    except KeyError:
        raise ValueError(f"unknown curve {curve!r}; use one of {sorted(_CURVES)}") from None
    key = ec.generate_private_key(ec_curve)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
            x509.NameAttribute(NameOID.COMMON_NAME, TLS_SERVER_NAME),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
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
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(secrets.randbits(127) | 1)
        .not_valid_before(now - GO_CLOCK_SKEW)
        .not_valid_after(now + GO_VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(TLS_SERVER_NAME)]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(eku, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
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
