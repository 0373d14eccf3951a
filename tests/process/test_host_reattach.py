"""Reattach: a second host talks to a running plugin without spawning it."""

from __future__ import annotations

import dataclasses

import pytest
from process_helpers import ECHO

from pyvider_rpcplugin_sync import (
    HandshakeConfig,
    HandshakeError,
    PluginClosed,
    PluginStartError,
    ProtocolVersionError,
    RPCPluginError,
)
from pyvider_rpcplugin_sync._host.process import PluginProcess
from pyvider_rpcplugin_sync._protocol.reattach import (
    ReattachConfig,
    format_tf_reattach_providers,
    parse_tf_reattach_providers,
)
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

pytestmark = pytest.mark.timeout(60)


def echo(plugin: PluginProcess, payload: bytes) -> bytes:
    return bytes(plugin.stub.Echo(echo_pb2.EchoRequest(payload=payload), timeout=5).payload)


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_reattach_in_test_mode_leaves_the_plugin_running(transport: str) -> None:
    with PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub, tls=False, transport=transport) as owner:
        config = dataclasses.replace(owner.reattach_config(), test=True)
        assert config.pid == owner.pid
        assert config.network == transport
        assert config.protocol_version == 1
        # Through Terraform's serialisation and back, as a debugger would hand it over.
        text = format_tf_reattach_providers({"registry.example/acme/echo": config})
        parsed = parse_tf_reattach_providers(text)["registry.example/acme/echo"]
        assert parsed == config
        with PluginProcess.reattach(parsed, stub=echo_pb2_grpc.EchoStub) as guest:
            assert guest.pid == owner.pid
            assert guest.negotiated_version == 1
            assert echo(guest, b"guest") == b"guest"
            assert guest.ping()
            assert guest.reattach_config() == parsed
        assert guest.returncode is None
        assert echo(owner, b"still running") == b"still running"
    assert owner.returncode == 0


def test_reattach_close_shuts_the_plugin_down() -> None:
    with PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub, tls=False) as owner:
        with PluginProcess.reattach(owner.reattach_config(), stub=echo_pb2_grpc.EchoStub) as guest:
            assert echo(guest, b"x") == b"x"
        # The guest's Shutdown stopped the plugin, and the guest waited for it to exit;
        # the owner notices (ping waits briefly for its reaper thread to see the exit).
        with pytest.raises(PluginClosed, match="exited"):
            owner.ping()
    assert owner.returncode == 0


def test_reattach_to_an_mtls_plugin_fails_cleanly() -> None:
    with PluginProcess(ECHO, tls=True) as owner:
        config = dataclasses.replace(owner.reattach_config(), test=True)
        with pytest.raises(RPCPluginError):
            PluginProcess.reattach(config, connect_timeout=3).start()
        assert owner.ping()


def test_reattach_to_a_dead_pid() -> None:
    owner = PluginProcess(ECHO, tls=False).start()
    config = owner.reattach_config()
    owner.close()
    with pytest.raises(PluginStartError, match="not found"):
        PluginProcess.reattach(config).start()


def test_reattach_refuses_netrpc_and_foreign_versions() -> None:
    config = ReattachConfig(network="unix", address="/nonexistent/sock", protocol="netrpc")
    with pytest.raises(HandshakeError, match="netrpc"):
        PluginProcess.reattach(config).start()
    config = ReattachConfig(network="unix", address="/nonexistent/sock", protocol_version=6)
    with pytest.raises(ProtocolVersionError):
        PluginProcess.reattach(config, handshake=HandshakeConfig(protocol_versions=(5,))).start()


def test_reattach_to_nothing_is_a_transport_error() -> None:
    config = ReattachConfig(network="unix", address="/nonexistent/dir/sock")
    with pytest.raises(RPCPluginError, match="could not connect"):
        PluginProcess.reattach(config, connect_timeout=2).start()
