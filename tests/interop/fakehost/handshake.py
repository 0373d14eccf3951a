"""The handshake line as the newest go-plugin host (v1.8, ``client.go`` ``Client.Start``) reads it.

Written from go-plugin's source, independently of ``pyvider_rpcplugin_sync._protocol.handshake``:
``TrimSpace`` the whole line, split on *every* ``|`` (hosts >= 1.6), at least 4 parts,
core version ``1``, app version one of the host's, ``unix``/``tcp``, protocol in the
allowed list (missing = ``netrpc``), field 6 used only when longer than 50 characters
and decoded with Go's ``base64.RawStdEncoding`` (padding is an error), field 7 read
only when the host enabled broker multiplexing. Error texts are go-plugin's.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

CORE_PROTOCOL_VERSION = 1
# client.go: ErrGRPCBrokerMuxNotSupported
MUX_NOT_SUPPORTED = (
    "client requested gRPC broker multiplexing but plugin does not support the feature"
)
MUX_UPDATE_HINT = (
    "; for Go plugins, you will need to update the "
    "github.com/hashicorp/go-plugin dependency and recompile"
)
_RAW_STD = re.compile(r"[A-Za-z0-9+/]*")


class HostError(Exception):
    """What ``Client.Start`` (or a later step) would return, with go-plugin's text."""


@dataclass(frozen=True)
class ParsedLine:
    parts: tuple[str, ...]
    version: int
    network: str
    address: str
    protocol: str
    server_cert_der: bytes | None
    multiplex: bool | None


def go_atoi(text: str) -> int:
    """``strconv.Atoi``: optional sign and decimal digits, nothing else (no spaces)."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def go_parse_bool(text: str) -> bool:
    """``strconv.ParseBool``."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def raw_std_decode(text: str) -> bytes:
    """``base64.RawStdEncoding.DecodeString``: standard alphabet, padding is illegal."""
    for index, char in enumerate(text):
        if char not in "\r\n" and not _RAW_STD.fullmatch(char):
            raise ValueError(f"illegal base64 data at input byte {index}")
    cleaned = text.replace("\r", "").replace("\n", "")
    if len(cleaned) % 4 == 1:
        raise ValueError(f"illegal base64 data at input byte {len(cleaned) - 1}")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except binascii.Error as exc:  # pragma: no cover - the checks above catch it first
        raise ValueError(f"illegal base64 data: {exc}") from None


def parse_line(
    line: str,
    *,
    versions: Sequence[int],
    multiplex: bool,
    eof: bool = False,
    allowed_protocols: Sequence[str] = ("grpc",),
) -> ParsedLine:
    """Parse and check one handshake line; raise HostError with go-plugin's message."""
    line = line.strip()  # strings.TrimSpace
    parts = line.split("|")  # strings.Split: every field (go-plugin >= 1.6)
    if len(parts) < 4:
        text = f"Unrecognized remote plugin message: {line}"
        if eof:
            text += "\nFailed to read any lines from plugin's stdout"
        raise HostError(text)
    try:
        core = go_atoi(parts[0])
    except ValueError as exc:
        raise HostError(f"error parsing core protocol version: {exc}") from None
    if core != CORE_PROTOCOL_VERSION:
        raise HostError(
            "incompatible core API version with plugin. "
            f"Plugin version: {parts[0]}, Core version: {CORE_PROTOCOL_VERSION}\n\n"
            "To fix this, the plugin usually only needs to be recompiled.\n"
            "Please report this to the plugin author"
        )
    try:
        version = go_atoi(parts[1])
    except ValueError as exc:
        raise HostError(f"Error parsing protocol version {parts[1]!r}: {exc}") from None
    if version not in versions:
        shown = "[" + " ".join(str(v) for v in versions) + "]"
        raise HostError(
            "incompatible API version with plugin. "
            f"Plugin version: {version}, Client versions: {shown}"
        )
    network, address = parts[2], parts[3]
    if network not in ("unix", "tcp"):
        raise HostError(f"unknown address type: {address}")
    protocol = parts[4] if len(parts) >= 5 else "netrpc"
    if protocol not in allowed_protocols:
        shown = "[" + " ".join(allowed_protocols) + "]"
        raise HostError(f'unsupported plugin protocol "{protocol}". Supported: {shown}')
    cert_der = _server_cert(parts)
    mux = _multiplex(parts) if multiplex and protocol == "grpc" else None
    return ParsedLine(tuple(parts), version, network, address, protocol, cert_der, mux)


def _server_cert(parts: list[str]) -> bytes | None:
    """Field 6, used only when longer than 50 characters (junk from ancient plugins)."""
    if len(parts) < 6 or len(parts[5]) <= 50:
        return None
    try:
        return raw_std_decode(parts[5])
    except ValueError as exc:
        raise HostError(f"error parsing server cert: {exc}") from None


def _multiplex(parts: list[str]) -> bool:
    """Field 7, read only by a host that enabled GRPCBrokerMultiplex; it must be true."""
    if len(parts) <= 6:
        raise HostError(MUX_NOT_SUPPORTED + MUX_UPDATE_HINT)
    try:
        supported = go_parse_bool(parts[6])
    except ValueError:
        raise HostError(
            f"error parsing {parts[6]!r} as a boolean for gRPC broker multiplexing support"
        ) from None
    if not supported:
        raise HostError(MUX_NOT_SUPPORTED)
    return supported
