"""The handshake line is read exactly as go-plugin's host reads it.

Versions: Go's ``strconv.Atoi``. TCP address: ``net.ResolveTCPAddr`` (``SplitHostPort``,
then a port of optional '+' and ASCII digits, or a service name, within 0..65535).
Unix path: it must fit in ``sun_path``, checked before grpc sees it.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvider_rpcplugin_sync._constants import MAX_UNIX_SOCKET_PATH
from pyvider_rpcplugin_sync._errors import HandshakeError
from pyvider_rpcplugin_sync._protocol.handshake import (
    go_atoi,
    parse_handshake,
    parse_protocol_versions,
)

pytestmark = pytest.mark.timeout(30)


def line(
    core: str = "1", app: str = "1", network: str = "tcp", address: str = "127.0.0.1:1234"
) -> str:
    return f"{core}|{app}|{network}|{address}|grpc|"


@pytest.mark.parametrize(
    "text",
    [
        "0_1",
        "1_0",
        "\uff11",
        "\u0661",
        " 1",
        "1 ",
        "1\t",
        "",
        "+",
        "-",
        "0x1",
        "1e0",
        "9223372036854775808",
        "-9223372036854775809",
    ],
)
def test_versions_that_atoi_rejects_are_refused(text: str) -> None:
    with pytest.raises(HandshakeError):
        parse_handshake(line(app=text))  # the line as a whole is TrimSpace'd, as in Go
    if text == text.strip():
        with pytest.raises(HandshakeError):
            parse_handshake(line(core=text))


@pytest.mark.parametrize(
    ("text", "value"),
    [("+1", 1), ("-0", 0), ("007", 7), ("-3", -3), ("9223372036854775807", 2**63 - 1)],
)
def test_versions_that_atoi_accepts(text: str, value: int) -> None:
    assert parse_handshake(line(app=text)).app_version == value


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_atoi_reads_every_int64(value: int) -> None:
    assert go_atoi(str(value)) == value


def test_protocol_versions_entries_are_atoi() -> None:
    assert parse_protocol_versions("1,+2,0_3, 4,\uff15") == ((1, 2), ("0_3", " 4", "\uff15"))


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1:65536",  # would wrap to port 0
        "127.0.0.1:65537",  # would wrap to port 1
        "127.0.0.1:131072",
        "127.0.0.1:99999999999999999999999",
        "127.0.0.1:-1",
        "127.0.0.1:-0x1",
        "127.0.0.1: 80",
        "127.0.0.1:80 ",
        "127.0.0.1:8_0",
        "127.0.0.1:\uff18\uff10",
        "127.0.0.1",  # missing port
        "127.0.0.1:",  # port 0: nothing listens there
        "127.0.0.1:0",
        "::1:80",  # too many colons
        "[::1]",
        "[::1]80",
        "[::1:80",
        "a]b:80",
        "localhost:no-such-service-name",
    ],
)
def test_tcp_addresses_go_plugin_refuses(address: str) -> None:
    with pytest.raises(HandshakeError):
        parse_handshake(line(address=address))


@pytest.mark.parametrize(
    ("address", "canonical"),
    [
        ("127.0.0.1:1234", "127.0.0.1:1234"),
        ("127.0.0.1:+1234", "127.0.0.1:1234"),
        ("127.0.0.1:0001234", "127.0.0.1:1234"),
        ("127.0.0.1:65535", "127.0.0.1:65535"),
        ("[::1]:80", "[::1]:80"),
        ("[fe80::1%eth0]:80", "[fe80::1%eth0]:80"),
        ("localhost:80", "localhost:80"),
        (":80", "localhost:80"),  # Go: an empty host is the local system
    ],
)
def test_tcp_addresses_go_plugin_accepts(address: str, canonical: str) -> None:
    assert parse_handshake(line(address=address)).address == canonical


@given(st.integers(min_value=1, max_value=65535))
def test_every_valid_port_round_trips(port: int) -> None:
    assert parse_handshake(line(address=f"127.0.0.1:{port}")).address == f"127.0.0.1:{port}"


def test_overlong_unix_path_is_refused_before_grpc() -> None:
    fits = "/" + "a" * (MAX_UNIX_SOCKET_PATH - 1)
    assert parse_handshake(line(network="unix", address=fits)).address == fits
    with pytest.raises(HandshakeError, match="sun_path"):
        parse_handshake(line(network="unix", address=fits + "a"))
    # bytes, not characters
    with pytest.raises(HandshakeError, match="sun_path"):
        parse_handshake(line(network="unix", address="/" + "\u00e9" * 60))
