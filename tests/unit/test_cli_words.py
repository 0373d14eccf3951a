"""Pure parts of the command line: kv's word order, handshake options."""

from __future__ import annotations

import argparse

import pytest

from pyvider_rpcplugin_sync._cli import _handshake_from, cli_hint, parse_kv_words

pytestmark = pytest.mark.timeout(10)
DEFAULT = ["default-plugin"]


@pytest.mark.parametrize(
    ("words", "cmd", "action"),
    [
        (["--", "./kv", "-v", "put", "a", "1"], ["./kv", "-v"], ["put", "a", "1"]),
        (["--", "./kv", "get", "a"], ["./kv"], ["get", "a"]),
        (["put", "a", "1", "--", "./kv", "x"], ["./kv", "x"], ["put", "a", "1"]),
        (["get", "a"], DEFAULT, ["get", "a"]),
        (["put", "k", "v"], DEFAULT, ["put", "k", "v"]),
    ],
)
def test_kv_words(words: list[str], cmd: list[str], action: list[str]) -> None:
    assert parse_kv_words(words, DEFAULT) == (cmd, action)


@pytest.mark.parametrize("words", [[], ["--", "./kv"], ["delete", "a"], ["put", "a"]])
def test_kv_words_rejects_other_shapes(words: list[str]) -> None:
    with pytest.raises(ValueError, match="usage: kv"):
        parse_kv_words(words, DEFAULT)


def test_handshake_options() -> None:
    config = _handshake_from(argparse.Namespace(cookie="K=V=W", versions="6,5"))
    assert (config.magic_cookie_key, config.magic_cookie_value) == ("K", "V=W")
    assert config.protocol_versions == (6, 5)
    assert _handshake_from(argparse.Namespace(cookie=None, versions="1")).magic_cookie_key == (
        "PLUGIN_MAGIC_COOKIE"
    )
    with pytest.raises(ValueError, match="KEY=VALUE"):
        _handshake_from(argparse.Namespace(cookie="novalue", versions="1"))
    with pytest.raises(ValueError, match="comma-separated"):
        _handshake_from(argparse.Namespace(cookie=None, versions="five"))


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("raise start_timeout, or check", "raise --start-timeout, or check"),
        ("raise connect_timeout, or check", "raise --connect-timeout, or check"),
        ("... (PLUGIN_CLIENT_CERT), or use tls=False", "... (PLUGIN_CLIENT_CERT), or use --no-tls"),
        ("use tls=True for this plugin", "leave out --no-tls for this plugin"),
        ("e.g. /tmp), or use transport='tcp'", "e.g. /tmp), or use --transport tcp"),
        ("set TMPDIR to a short directory", "set TMPDIR to a short directory"),
    ],
)
def test_cli_hints_name_flags(hint: str, expected: str) -> None:
    assert cli_hint(hint) == expected
