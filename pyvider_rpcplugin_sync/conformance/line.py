"""The handshake line as go-plugin hosts read it, and the plugin certificate (no I/O).

``parse_line`` applies the rules of current go-plugin hosts (trim the line,
split on every ``|``, at least four fields, core version ``1``, integer app
version, protocol ``grpc``, certificate used only when longer than 50
characters); ``legacy_fields`` shows what a go-plugin 1.0.x host, which splits
into at most six fields, makes of the same line.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

CORE_VERSION = "1"
MIN_CERT_LENGTH = 50  # shorter certificate fields are ignored by go-plugin hosts
_GO_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_BASE64_RAW = re.compile(r"[A-Za-z0-9+/]*", re.ASCII)


class LineError(ValueError):
    """The line is not a handshake line a go-plugin host accepts."""


@dataclass(frozen=True)
class HandshakeLine:
    raw: str
    fields: tuple[str, ...]
    core: int
    app_version: int
    network: str
    address: str
    protocol: str
    cert: str
    mux: str | None

    @property
    def field_count(self) -> int:
        return len(self.fields)


def go_int(text: str) -> int:
    """``strconv.Atoi``: an optional sign and ASCII digits, nothing else."""
    if not _GO_INT.fullmatch(text):
        raise LineError(f"{text!r} is not an integer")
    return int(text)


def parse_line(raw: str) -> HandshakeLine:
    """Parse ``raw`` (one stdout line, newline included or not) like a go-plugin host."""
    line = raw.strip()
    fields = tuple(line.split("|"))
    if len(fields) < 4:
        raise LineError(
            "fewer than 4 '|'-separated fields "
            f"(go-plugin: unrecognized remote plugin message): {_show(raw)}"
        )
    try:
        core = go_int(fields[0])
    except LineError as exc:
        raise LineError(f"core protocol version: {exc}") from None
    if fields[0] != CORE_VERSION:
        raise LineError(f"core protocol version {fields[0]}, hosts accept only 1")
    try:
        app_version = go_int(fields[1])
    except LineError as exc:
        raise LineError(f"app protocol version: {exc}") from None
    network = fields[2]
    if network not in ("unix", "tcp"):
        raise LineError(f"network {network!r}: hosts know only 'unix' and 'tcp'")
    protocol = fields[4] if len(fields) > 4 else "netrpc"
    if protocol != "grpc":
        raise LineError(
            f"protocol {protocol!r}: gRPC hosts accept only 'grpc' (a missing field means netrpc)"
        )
    cert = fields[5] if len(fields) > 5 else ""
    mux = fields[6] if len(fields) > 6 else None
    return HandshakeLine(raw, fields, core, app_version, network, fields[3], protocol, cert, mux)


def legacy_fields(raw: str) -> tuple[str, ...]:
    """The fields a go-plugin 1.0.x host sees: at most six, the sixth keeps the rest."""
    return tuple(raw.strip().split("|", 5))


def decode_cert(field: str) -> bytes:
    """The DER in field 6: standard base64 without ``=`` padding, as Go's RawStdEncoding."""
    if "=" in field:
        raise LineError("the certificate field is padded with '='; go-plugin hosts reject padding")
    if not _BASE64_RAW.fullmatch(field):
        raise LineError("the certificate field has characters outside standard base64")
    if len(field) % 4 == 1:
        raise LineError("the certificate field has an impossible base64 length")
    try:
        return base64.b64decode(field + "=" * (-len(field) % 4), validate=True)
    except binascii.Error as exc:
        raise LineError(f"the certificate field is not base64: {exc}") from None


def _show(raw: str, limit: int = 80) -> str:
    text = raw.rstrip("\n")
    return repr(text if len(text) <= limit else text[:limit] + "...")
