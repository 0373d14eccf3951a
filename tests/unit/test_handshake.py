"""The pure handshake module: line format/parse, cert field, negotiation, environment."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvider_rpcplugin_sync import HandshakeConfig, HandshakeError, ProtocolVersionError
from pyvider_rpcplugin_sync._constants import MAX_UNIX_SOCKET_PATH
from pyvider_rpcplugin_sync._protocol.handshake import (
    HandshakeLine,
    cookie_matches,
    decode_cert_field,
    encode_cert_field,
    excerpt,
    format_handshake,
    host_environment,
    negotiate_version,
    parse_handshake,
    parse_protocol_versions,
    port_range,
    printable,
    validate_handshake,
)

pytestmark = pytest.mark.timeout(60)

field_text = st.text(
    alphabet=st.characters(blacklist_characters="|\r\n", blacklist_categories=("Cs",)),
    min_size=1,
)
cert_fields = st.one_of(
    st.just(""),
    st.binary(min_size=40, max_size=900).map(encode_cert_field),
)
# What a Go host can use: a path that fits sun_path, or a canonical host:port.
unix_paths = field_text.filter(
    lambda s: s == s.strip() and len(s.encode("utf-8")) <= MAX_UNIX_SOCKET_PATH
)
tcp_hosts = st.one_of(
    st.from_regex(r"[a-z0-9.-]{1,40}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
)
tcp_addresses = st.builds(lambda host, port: f"{host}:{port}", tcp_hosts, st.integers(1, 65535))
endpoints = st.one_of(
    st.tuples(st.just("unix"), unix_paths), st.tuples(st.just("tcp"), tcp_addresses)
)
lines = endpoints.flatmap(
    lambda endpoint: st.builds(
        HandshakeLine,
        core_version=st.integers(0, 10**6),
        app_version=st.integers(0, 10**6),
        network=st.just(endpoint[0]),
        address=st.just(endpoint[1]),
        protocol=st.sampled_from(["grpc", "netrpc"]),
        server_cert=cert_fields,
        multiplex=st.sampled_from([None, True, False]),
    )
)


@given(lines)
def test_parse_inverts_format(line: HandshakeLine) -> None:
    assert parse_handshake(format_handshake(line)) == line
    assert parse_handshake(format_handshake(line) + "\r\n") == line


@given(st.text())
def test_any_text_parses_or_raises_handshake_error(text: str) -> None:
    with contextlib.suppress(HandshakeError):
        parse_handshake(text)


def test_go_plaintext_line_has_six_fields_with_trailing_bar() -> None:
    line = HandshakeLine(1, 1, "unix", "/tmp/plugin123", "grpc")
    assert format_handshake(line) == "1|1|unix|/tmp/plugin123|grpc|"


def test_field_seven_only_when_set() -> None:
    line = HandshakeLine(1, 6, "unix", "/tmp/p", "grpc", multiplex=False)
    assert format_handshake(line) == "1|6|unix|/tmp/p|grpc||false"


def test_format_refuses_separators_in_fields() -> None:
    with pytest.raises(ValueError, match="address"):
        format_handshake(HandshakeLine(1, 1, "unix", "/tmp/a|b"))


@pytest.mark.parametrize(
    "text",
    ["", "\n", "hello world", "1|1|unix", "banner line before handshake"],
)
def test_junk_is_unrecognized(text: str) -> None:
    with pytest.raises(HandshakeError, match="unrecognized remote plugin message"):
        parse_handshake(text)


def test_bad_numbers_and_network() -> None:
    with pytest.raises(HandshakeError, match="core protocol version"):
        parse_handshake("x|1|unix|/p|grpc|")
    with pytest.raises(HandshakeError, match="unknown address type"):
        parse_handshake("1|1|udp|/p|grpc|")


def test_missing_protocol_means_netrpc_and_short_cert_is_ignored() -> None:
    assert parse_handshake("1|1|tcp|127.0.0.1:1234").protocol == "netrpc"
    assert parse_handshake("1|1|tcp|127.0.0.1:1234|grpc|short").server_cert == ""


def test_extra_fields_beyond_seven_are_ignored() -> None:
    line = parse_handshake("1|1|unix|/p|grpc||true|extra|more")
    assert line.multiplex is True


def test_validate() -> None:
    good = parse_handshake("1|5|unix|/p|grpc|")
    assert validate_handshake(good, [5, 6]) == 5
    with pytest.raises(ProtocolVersionError, match="core API version"):
        validate_handshake(parse_handshake("2|5|unix|/p|grpc|"), [5])
    with pytest.raises(ProtocolVersionError, match=r"Client versions: \[6\]"):
        validate_handshake(good, [6])
    with pytest.raises(HandshakeError, match="unsupported plugin protocol"):
        validate_handshake(parse_handshake("1|5|unix|/p|netrpc|"), [5])


@given(st.binary(max_size=600))
def test_cert_field_is_rawstd_base64(der: bytes) -> None:
    field = encode_cert_field(der)
    assert "=" not in field
    assert decode_cert_field(field) == der
    # Padded input (from lenient peers) decodes too.
    assert decode_cert_field(base64.b64encode(der).decode()) == der


def test_cert_field_rejects_garbage() -> None:
    with pytest.raises(HandshakeError, match="error parsing server cert"):
        decode_cert_field("not*base64!")


@given(
    st.lists(st.integers(1, 50), max_size=6),
    st.lists(st.integers(1, 50), min_size=1, max_size=6),
)
def test_negotiation_matches_go_plugin(host: list[int], plugin: list[int]) -> None:
    chosen = negotiate_version(host, plugin)
    common = set(host) & set(plugin)
    assert chosen == (max(common) if common else min(plugin))


def test_protocol_versions_env_parsing_skips_bad_entries() -> None:
    assert parse_protocol_versions("6,5") == ((6, 5), ())
    assert parse_protocol_versions("5,x,6") == ((5, 6), ("x",))
    assert parse_protocol_versions(None) == ((), ())


def test_handshake_config_validation_and_secret_repr() -> None:
    config = HandshakeConfig("KEY", "secret-value", (2, 1))
    assert "secret-value" not in repr(config)
    with pytest.raises(ValueError):
        HandshakeConfig("KEY", "", (1,))
    with pytest.raises(ValueError):
        HandshakeConfig("KEY", "v", ())
    with pytest.raises(ValueError):
        HandshakeConfig("KEY", "v", (0,))


def test_default_handshake_matches_pyvider_rpcplugin() -> None:
    config = HandshakeConfig()
    assert config.magic_cookie_key == "PLUGIN_MAGIC_COOKIE"
    assert config.magic_cookie_value == "test_cookie_value"
    assert config.protocol_versions == (1,)


def test_host_environment_overrides_and_drops_stale_cert() -> None:
    config = HandshakeConfig("KEY", "value", (5, 6))
    env = host_environment(
        {"PATH": "/bin", "KEY": "wrong", "PLUGIN_CLIENT_CERT": "stale"},
        config,
        socket_dir="/tmp/d",
    )
    assert env["KEY"] == "value"
    assert env["PLUGIN_PROTOCOL_VERSIONS"] == "5,6"
    assert env["PLUGIN_UNIX_SOCKET_DIR"] == "/tmp/d"
    assert "PLUGIN_CLIENT_CERT" not in env
    assert env["PATH"] == "/bin"
    assert cookie_matches(env, config)
    assert not cookie_matches({"KEY": "value "}, config)


def test_port_range() -> None:
    assert port_range({}) == (0, 0)
    assert port_range({"PLUGIN_MIN_PORT": "10000", "PLUGIN_MAX_PORT": "10010"}) == (10000, 10010)
    with pytest.raises(HandshakeError, match="must not exceed"):
        port_range({"PLUGIN_MIN_PORT": "20", "PLUGIN_MAX_PORT": "10"})
    with pytest.raises(HandshakeError, match="decimal"):
        port_range({"PLUGIN_MIN_PORT": "x", "PLUGIN_MAX_PORT": "10"})


def test_junk_in_a_handshake_line_is_quoted_escaped_and_short() -> None:
    junk = bytes(b for b in range(256) if b != 10).decode("utf-8", "replace") * 3
    for line in (junk, f"1|1|{junk}|x|grpc|", f"{junk}|1|unix|/s|grpc|"):
        with pytest.raises(HandshakeError) as info:
            parse_handshake(line)
        message = info.value.message
        assert message.isascii() and message.isprintable(), message
        assert len(message) < 160, message


def test_printable_and_excerpt() -> None:
    assert printable("a\\b\x1b[0m\ufffd", 50) == "a\\\\b\\x1b[0m\\ufffd"
    assert printable("x" * 10, 4) == "xxxx..."
    assert excerpt("ok") == "'ok'"
    assert excerpt("x" * 10, 4) == "'xxxx'..."
    assert excerpt("ends with...", 50) == "'ends with...'"
