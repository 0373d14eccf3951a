"""Pure: read handshake fields exactly as go-plugin's Go host reads them.

Python's ``int()`` takes underscores, non-ASCII digits and surrounding spaces, and
grpc wraps a TCP port over 65535 around (65536 + P dials P): neither may decide
what a plugin's handshake line means. Go's rules, restated:

- versions: ``strconv.Atoi``, an optional sign and ASCII digits, within int64;
- TCP address: ``net.ResolveTCPAddr``, i.e. ``net.SplitHostPort``, then a port of
  an optional '+' and ASCII digits (or a service name) within 0..65535;
- unix path: anything, but the kernel's ``sun_path`` holds at most
  MAX_UNIX_SOCKET_PATH bytes, checked here before grpc's C core sees the path.
"""

from __future__ import annotations

import os
import re
import socket

from .._constants import MAX_UNIX_SOCKET_PATH

_ATOI = re.compile(r"[+-]?[0-9]+", re.ASCII)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_PORT_DIGITS = re.compile(r"\+?[0-9]+", re.ASCII)
_MAX_PORT = 65535


def go_atoi(text: str) -> int:
    """``strconv.Atoi`` on a 64-bit platform; ValueError for what it rejects."""
    if not _ATOI.fullmatch(text):
        raise ValueError(f"invalid syntax: {text[:40]!r}")
    value = int(text, 10)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"value out of range: {text[:40]!r}")
    return value


def split_host_port(hostport: str) -> tuple[str, str]:
    """``net.SplitHostPort``: "host:port" or "[host]:port"; ValueError otherwise."""
    colon = hostport.rfind(":")
    if colon < 0:
        raise ValueError("missing port in address")
    start, end = 0, 0
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise ValueError("missing ']' in address")
        if close + 1 != colon:
            at_colon = close + 1 < len(hostport) and hostport[close + 1] == ":"
            raise ValueError(
                "too many colons in address" if at_colon else "missing port in address"
            )
        host = hostport[1:close]
        start, end = 1, close + 1
    else:
        host = hostport[:colon]
        if ":" in host:
            raise ValueError("too many colons in address")
    if "[" in hostport[start:]:
        raise ValueError("unexpected '[' in address")
    if "]" in hostport[end:]:
        raise ValueError("unexpected ']' in address")
    return host, hostport[colon + 1 :]


def parse_port(text: str) -> int:
    """A TCP port as Go's resolver reads it: '+'? ASCII digits, or a service name."""
    if _PORT_DIGITS.fullmatch(text):
        port = int(text, 10)
    elif text == "":
        port = 0  # Go's legacy rule: an empty port is port 0
    elif text.startswith("-") and text[1:].isascii() and text[1:].isdigit():
        raise ValueError("invalid port")
    else:
        try:
            port = socket.getservbyname(text.lower(), "tcp")
        except (OSError, UnicodeError):
            raise ValueError("unknown port") from None
    if port > _MAX_PORT:
        raise ValueError("invalid port")
    return port


def tcp_address(hostport: str) -> str:
    """The address a Go host would dial, as a grpc target; ValueError when it refuses.

    Port 0 (also an empty port) parses in Go but can never be dialed: refused here
    with a clear reason instead of a later connection error.
    """
    host, port_text = split_host_port(hostport)
    port = parse_port(port_text)
    if port == 0:
        raise ValueError("port 0 cannot be dialed")
    host = host or "localhost"  # Go: an empty host means the local system
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def unix_path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a unix socket address, or None when it can."""
    size = len(os.fsencode(path))
    if size > MAX_UNIX_SOCKET_PATH:
        return (
            f"unix socket path is {size} bytes, over the {MAX_UNIX_SOCKET_PATH} bytes "
            "that sun_path holds"
        )
    return None
