"""Pure handshake logic: the line's format and parse, version negotiation, environment.

No I/O here: both drivers (host and plugin) call these functions, and the unit
tests check them directly. Wire details: docs/protocol.md, sections 2-6.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .._constants import (
    CORE_PROTOCOL_VERSION,
    DEFAULT_COOKIE_KEY,
    DEFAULT_COOKIE_VALUE,
    DEFAULT_MAX_PORT,
    DEFAULT_MIN_PORT,
    DEFAULT_PROTOCOL_VERSIONS,
    ENV_CLIENT_CERT,
    ENV_MAX_PORT,
    ENV_MIN_PORT,
    ENV_PROTOCOL_VERSIONS,
    ENV_UNIX_SOCKET_DIR,
    HANDSHAKE_MAX_FIELDS,
    HANDSHAKE_MIN_FIELDS,
    MIN_CERT_FIELD_LENGTH,
    NETWORK_TCP,
    NETWORK_UNIX,
    PROTOCOL_GRPC,
    PROTOCOL_NETRPC,
)
from .._errors import HandshakeError, ProtocolVersionError
from .goparse import go_atoi, tcp_address, unix_path_problem

__all__ = ["go_atoi"]  # re-exported: the protocol's number rule lives with the line

NOT_A_HOST_MESSAGE = (
    "This binary is a plugin. These are not meant to be executed directly.\n"
    "Please execute the program that consumes these plugins, which will\n"
    "load any plugins automatically"
)


@dataclass(frozen=True)
class HandshakeConfig:
    """What host and plugin must agree on: the magic cookie and the app protocol versions."""

    magic_cookie_key: str = DEFAULT_COOKIE_KEY
    # The value is a shared secret of sorts: keep it out of reprs and logs.
    magic_cookie_value: str = field(default=DEFAULT_COOKIE_VALUE, repr=False)
    protocol_versions: tuple[int, ...] = DEFAULT_PROTOCOL_VERSIONS

    def __post_init__(self) -> None:
        if not self.magic_cookie_key or "=" in self.magic_cookie_key:
            raise ValueError("magic_cookie_key must be a non-empty name without '='")
        if not self.magic_cookie_value:
            raise ValueError("magic_cookie_value must not be empty")
        versions = tuple(self.protocol_versions)
        if not versions or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in versions
        ):
            raise ValueError("protocol_versions must be a non-empty sequence of positive ints")
        object.__setattr__(self, "protocol_versions", versions)


@dataclass(frozen=True)
class HandshakeLine:
    """The fields of the plugin's one stdout line (docs/protocol.md, "The handshake line")."""

    core_version: int
    app_version: int
    network: str
    address: str
    protocol: str = PROTOCOL_GRPC
    # RawStd base64 of the plugin certificate's DER, or "" (no TLS).
    server_cert: str = ""
    # Field 7: None when absent (only printed when the host set PLUGIN_MULTIPLEX_GRPC).
    multiplex: bool | None = None


# --- the line ------------------------------------------------------------------


def format_handshake(line: HandshakeLine) -> str:
    """The line as a plugin prints it, without the newline: always six fields."""
    for name in ("network", "address", "protocol", "server_cert"):
        value = getattr(line, name)
        if "|" in value or "\n" in value or "\r" in value:
            raise ValueError(f"handshake field {name} must not contain '|' or a line break")
    fields = [
        str(line.core_version),
        str(line.app_version),
        line.network,
        line.address,
        line.protocol,
        line.server_cert,
    ]
    if line.multiplex is not None:
        fields.append("true" if line.multiplex else "false")
    return "|".join(fields)


def parse_handshake(text: str) -> HandshakeLine:
    """Parse a handshake line as a go-plugin >= 1.6 host does; raise HandshakeError."""
    stripped = text.strip()
    parts = stripped.split("|")
    if len(parts) < HANDSHAKE_MIN_FIELDS:
        raise HandshakeError(
            f"unrecognized remote plugin message: {excerpt(stripped)}",
            hint="the plugin must print its handshake line as the first line on stdout; "
            "anything printed before it (banners, warnings, blank lines) breaks the start",
        )
    parts = parts[:HANDSHAKE_MAX_FIELDS]
    core_version = _parse_int(parts[0], "core protocol version")
    app_version = _parse_int(parts[1], "app protocol version")
    network, address = parts[2], parts[3]
    if network not in (NETWORK_UNIX, NETWORK_TCP):
        raise HandshakeError(
            f"unknown address type {excerpt(network, 40)} in the handshake",
            hint="the network field must be 'unix' or 'tcp'",
        )
    if not address:
        raise HandshakeError("the handshake has an empty address field")
    address = _checked_address(network, address)
    protocol = parts[4] if len(parts) > 4 and parts[4] else PROTOCOL_NETRPC
    cert = parts[5] if len(parts) > 5 else ""
    if len(cert) <= MIN_CERT_FIELD_LENGTH:
        cert = ""  # go-plugin ignores short junk from ancient plugins
    multiplex = _parse_bool(parts[6]) if len(parts) > 6 else None
    return HandshakeLine(core_version, app_version, network, address, protocol, cert, multiplex)


def validate_handshake(line: HandshakeLine, accepted_versions: Iterable[int]) -> int:
    """Check core version, app version and protocol; return the negotiated version."""
    if line.core_version != CORE_PROTOCOL_VERSION:
        raise ProtocolVersionError(
            f"incompatible core API version with plugin. Plugin version: {line.core_version}, "
            f"Core version: {CORE_PROTOCOL_VERSION}",
            hint="the plugin speaks another go-plugin core protocol; it usually only "
            "needs to be rebuilt against a current go-plugin",
        )
    accepted = sorted(set(accepted_versions))
    if line.app_version not in accepted:
        raise ProtocolVersionError(
            f"incompatible API version with plugin. Plugin version: {line.app_version}, "
            f"Client versions: {accepted}",
            hint="upgrade the host or the plugin so that they share a protocol version",
        )
    if line.protocol != PROTOCOL_GRPC:
        raise HandshakeError(
            f'unsupported plugin protocol "{line.protocol}". Supported: [{PROTOCOL_GRPC}]',
            hint="this library speaks only go-plugin's gRPC protocol, not net/rpc",
        )
    return line.app_version


def printable(text: str, limit: int) -> str:
    """``text`` as a message may show whatever a plugin printed: every character that is
    not printable ASCII escaped (``\\x00``, ``\\ufffd``), and cut after ``limit``
    characters of the result (then ``...``), so that junk stays one short, harmless line."""
    parts: list[str] = []
    size = 0
    for char in text:
        if char == "\\":
            part = "\\\\"
        elif char.isascii() and char.isprintable():
            part = char
        else:
            part = char.encode("unicode_escape").decode("ascii")
        if size + len(part) > limit:
            return "".join(parts) + "..."
        parts.append(part)
        size += len(part)
    return "".join(parts)


def excerpt(text: str, limit: int = 100) -> str:
    """``printable(text, limit)`` in quotes (the dots of a cut one after them)."""
    shown = printable(text, limit)
    if shown == printable(text, len(text) * 12):  # whole (an escape is at most 10 long)
        return f"'{shown}'"
    return f"'{shown[:-3]}'..."


def _parse_int(text: str, what: str) -> int:
    try:
        return go_atoi(text)
    except ValueError:
        raise HandshakeError(
            f"error parsing {what}: {excerpt(text, 40)} is not a number",
            hint="the first two handshake fields are decimal integers (ASCII digits only)",
        ) from None


def _checked_address(network: str, address: str) -> str:
    """The address as go-plugin's host reads it, or HandshakeError.

    The rules are in docs/protocol.md, "The handshake line".
    """
    if network == NETWORK_UNIX:
        problem = unix_path_problem(address)
        if problem is None:
            return address
        raise HandshakeError(
            f"the plugin's {problem}: {excerpt(address, 60)}",
            hint="the plugin must create its socket in a shorter directory "
            "(PLUGIN_UNIX_SOCKET_DIR or TMPDIR)",
        )
    try:
        return tcp_address(address)
    except ValueError as exc:
        raise HandshakeError(
            f"invalid tcp address {excerpt(address, 80)} in the handshake: {exc}",
            hint="the plugin must print host:port with a port in 1..65535",
        ) from None


def _parse_bool(text: str) -> bool | None:
    # Only a multiplexing host must reject a bad field 7; we never multiplex,
    # so an unreadable value just means "unknown".
    lowered = text.strip().lower()
    if lowered in ("true", "1", "t"):
        return True
    if lowered in ("false", "0", "f"):
        return False
    return None


# --- the certificate field (Go RawStdEncoding) -----------------------------------


def encode_cert_field(der: bytes) -> str:
    """Standard-alphabet base64 without '=' padding, as Go's RawStdEncoding."""
    return base64.b64encode(der).decode("ascii").rstrip("=")


def decode_cert_field(text: str) -> bytes:
    """Decode a RawStd (or padded) base64 certificate field strictly."""
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HandshakeError(
            f"error parsing server cert: {exc}",
            hint="field 6 must be the plugin certificate's DER in standard base64",
        ) from None


# --- version negotiation (go-plugin server.go, protocolVersion) -------------------


def parse_protocol_versions(text: str | None) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Split PLUGIN_PROTOCOL_VERSIONS into (valid versions, rejected entries)."""
    if not text:
        return (), ()
    valid: list[int] = []
    rejected: list[str] = []
    for entry in text.split(","):
        try:
            valid.append(go_atoi(entry))
        except ValueError:
            rejected.append(entry)
    return tuple(valid), tuple(rejected)


def negotiate_version(host_versions: Iterable[int], plugin_versions: Iterable[int]) -> int:
    """The highest version both list; else the plugin's lowest (the host then refuses it)."""
    mine = sorted(set(plugin_versions), reverse=True)
    if not mine:
        raise ValueError("the plugin offers no protocol version")
    common = set(host_versions).intersection(mine)
    return max(common) if common else mine[-1]


# --- environment ---------------------------------------------------------------


def host_environment(
    base: Mapping[str, str],
    handshake: HandshakeConfig,
    *,
    client_cert_pem: str | None = None,
    socket_dir: str | None = None,
    min_port: int = DEFAULT_MIN_PORT,
    max_port: int = DEFAULT_MAX_PORT,
) -> dict[str, str]:
    """The plugin's environment: ``base`` plus the go-plugin variables, which win."""
    env = dict(base)
    env[handshake.magic_cookie_key] = handshake.magic_cookie_value
    env[ENV_PROTOCOL_VERSIONS] = ",".join(str(v) for v in handshake.protocol_versions)
    env[ENV_MIN_PORT] = str(min_port)
    env[ENV_MAX_PORT] = str(max_port)
    if client_cert_pem:
        env[ENV_CLIENT_CERT] = client_cert_pem
    else:
        env.pop(ENV_CLIENT_CERT, None)
    if socket_dir:
        env[ENV_UNIX_SOCKET_DIR] = socket_dir
    return env


def cookie_matches(environ: Mapping[str, str], handshake: HandshakeConfig) -> bool:
    """go-plugin compares the cookie as an exact string."""
    return environ.get(handshake.magic_cookie_key) == handshake.magic_cookie_value


def port_range(environ: Mapping[str, str]) -> tuple[int, int]:
    """PLUGIN_MIN_PORT..PLUGIN_MAX_PORT; (0, 0) when unset, meaning any free port."""
    raw_min, raw_max = environ.get(ENV_MIN_PORT, ""), environ.get(ENV_MAX_PORT, "")
    if not raw_min and not raw_max:
        return 0, 0
    try:
        low = int(raw_min or 0)
        high = int(raw_max or raw_min)
    except ValueError:
        raise HandshakeError(
            f"invalid port range {ENV_MIN_PORT}={raw_min!r} {ENV_MAX_PORT}={raw_max!r}",
            hint="both must be decimal port numbers",
        ) from None
    if not (0 <= low <= 65535 and 0 <= high <= 65535) or low > high:
        raise HandshakeError(
            f"invalid port range {low}..{high}",
            hint=f"{ENV_MIN_PORT} must not exceed {ENV_MAX_PORT}, both within 0..65535",
        )
    return low, high
