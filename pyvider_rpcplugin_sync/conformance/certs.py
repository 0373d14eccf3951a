"""AutoMTLS certificates: making a host's, and judging a plugin's (no I/O).

The shape is go-plugin's: self-signed, ``O=HashiCorp, CN=localhost``,
``DNS:localhost`` as the only name, a CA, usable for client and server auth.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_HASHES: dict[str, hashes.SHA256 | hashes.SHA384 | hashes.SHA512] = {
    "P-256": hashes.SHA256(),
    "P-384": hashes.SHA384(),
    "P-521": hashes.SHA512(),
}


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes
    der: bytes


def make_cert(curve: str = "P-256", *, organization: str = "HashiCorp") -> KeyPair:
    """A fresh key and self-signed certificate in go-plugin's AutoMTLS shape."""
    key = ec.generate_private_key(CURVES[curve])
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .sign(key, _HASHES[curve])
    )
    return KeyPair(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert.public_bytes(serialization.Encoding.DER),
    )


@dataclass(frozen=True)
class CertShape:
    """What matters about a peer's AutoMTLS certificate."""

    key: str  # "ECDSA P-521", "RSA 2048", ...
    signature: str
    subject: str
    dns_names: tuple[str, ...]
    is_ca: bool
    server_auth: bool
    client_auth: bool
    valid_now: bool

    def problems(self, role: str) -> list[str]:
        """Why a go-plugin peer would reject this certificate for ``role`` ("server"/"client")."""
        found: list[str] = []
        if role == "server" and "localhost" not in self.dns_names:
            found.append(
                "no DNS:localhost subject alternative name (Go checks the name only there)"
            )
        if role == "server" and not self.server_auth:
            found.append("extended key usage lacks serverAuth")
        if role == "client" and not self.client_auth:
            found.append("extended key usage lacks clientAuth")
        if not self.valid_now:
            found.append("not valid now")
        return found

    def describe(self) -> str:
        names = ",".join(self.dns_names) or "none"
        return f"{self.key}, {self.signature}, {self.subject}, DNS:{names}, CA={self.is_ca}"


def shape(cert: x509.Certificate) -> CertShape:
    public = cert.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        key = f"ECDSA {_curve_name(public.curve)}"
    else:
        kind = type(public).__name__.removeprefix("_").replace("PublicKey", "")
        key = f"{kind} {getattr(public, 'key_size', '?')}"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        dns = ()
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        server_auth = ExtendedKeyUsageOID.SERVER_AUTH in eku
        client_auth = ExtendedKeyUsageOID.CLIENT_AUTH in eku
    except x509.ExtensionNotFound:
        server_auth = client_auth = True  # no EKU: any use
    now = datetime.datetime.now(datetime.UTC)
    oid = cert.signature_algorithm_oid
    return CertShape(
        key=key,
        signature=str(getattr(oid, "_name", oid.dotted_string)),
        subject=cert.subject.rfc4514_string(),
        dns_names=dns,
        is_ca=ca,
        server_auth=server_auth,
        client_auth=client_auth,
        valid_now=cert.not_valid_before_utc <= now <= cert.not_valid_after_utc,
    )


def shape_of_der(der: bytes) -> CertShape:
    return shape(x509.load_der_x509_certificate(der))


def shape_of_pem(pem: bytes) -> CertShape:
    return shape(x509.load_pem_x509_certificate(pem))


def der_to_pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def _curve_name(curve: ec.EllipticCurve) -> str:
    return {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(
        curve.name, curve.name
    )
