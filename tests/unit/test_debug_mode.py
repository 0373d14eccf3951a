"""Debug mode's pure parts: the made-up host environment and the printed reattach config."""

from __future__ import annotations

import pytest

from pyvider_rpcplugin_sync import HandshakeConfig
from pyvider_rpcplugin_sync._plugin.debug import debug_banner, debug_environ, plugin_versions
from pyvider_rpcplugin_sync._protocol.reattach import ReattachConfig, parse_tf_reattach_providers

HANDSHAKE = HandshakeConfig(
    magic_cookie_key="TF_PLUGIN_MAGIC_COOKIE", magic_cookie_value="cookie", protocol_versions=(5, 6)
)


def test_environ_has_cookie_and_versions_and_no_automtls() -> None:
    base = {
        "HOME": "/root",
        "PLUGIN_CLIENT_CERT": "-----BEGIN CERTIFICATE-----",
        "PLUGIN_MULTIPLEX_GRPC": "true",
        "PLUGIN_PROTOCOL_VERSIONS": "1",
    }
    environ = debug_environ(base, HANDSHAKE, [5, 6])
    assert environ == {
        "HOME": "/root",
        "TF_PLUGIN_MAGIC_COOKIE": "cookie",
        "PLUGIN_PROTOCOL_VERSIONS": "5,6",
    }
    assert "PLUGIN_CLIENT_CERT" in base  # the caller's mapping is left alone


def test_versions_come_from_the_registrars() -> None:
    def register(server: object) -> None: ...

    assert plugin_versions(register, HANDSHAKE) == [5, 6]
    assert plugin_versions({6: register, 3: register}, HANDSHAKE) == [3, 6]


@pytest.mark.parametrize(
    ("network", "address"), [("unix", "/tmp/d/plugin1"), ("tcp", "127.0.0.1:10001")]
)
def test_banner_holds_a_parseable_tf_reattach_providers(network: str, address: str) -> None:
    config = ReattachConfig(
        network=network, address=address, protocol_version=6, pid=4242, test=True
    )
    banner = debug_banner("registry.terraform.io/acme/x", config)
    [line] = [x for x in banner.splitlines() if x.startswith("\tTF_REATTACH_PROVIDERS='")]
    text = line.removeprefix("\tTF_REATTACH_PROVIDERS='").removesuffix("'")
    assert parse_tf_reattach_providers(text) == {"registry.terraform.io/acme/x": config}
    assert "pid 4242" in banner
