"""Hostile or broken handshake lines are refused before anything is dialed."""

from __future__ import annotations

import pytest
from process_helpers import ECHO, scenario

from pyvider_rpcplugin_sync import HandshakeError, TransportError
from pyvider_rpcplugin_sync._host.process import PluginProcess
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

pytestmark = pytest.mark.timeout(60)


def raw_line(text: str) -> list[str]:
    return scenario("faults", "line", text)


def test_wrapped_port_never_reaches_another_process() -> None:
    # 65536 + P wrapped around to P in grpc: the host reached this innocent plugin
    # and, on close, sent it Shutdown although it never started it.
    with PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub, tls=False, transport="tcp") as victim:
        port = int((victim.address or "").rsplit(":", 1)[1])
        for wrapped in (65536 + port, 2 * 65536 + port):
            hostile = PluginProcess(raw_line(f"1|1|tcp|127.0.0.1:{wrapped}|grpc|"), tls=False)
            with pytest.raises(HandshakeError, match="invalid tcp address"), hostile:
                pass
        reply = victim.stub.Echo(echo_pb2.EchoRequest(payload=b"alive"), timeout=5)
        assert reply.payload == b"alive"
        assert victim.returncode is None


@pytest.mark.parametrize("address", ["127.0.0.1:+-80", "127.0.0.1: 1", "127.0.0.1", "[::1]"])
def test_malformed_tcp_address_is_a_handshake_error(address: str) -> None:
    with pytest.raises(HandshakeError, match="invalid tcp address"):
        PluginProcess(raw_line(f"1|1|tcp|{address}|grpc|"), tls=False).start()


def test_overlong_unix_path_fails_cleanly_and_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    path = "/tmp/" + "p" * 200
    with pytest.raises(HandshakeError, match="sun_path"):
        PluginProcess(raw_line(f"1|1|unix|{path}|grpc|"), tls=False).start()
    # grpc's C core logs straight to fd 2; nothing of it may appear.
    assert capfd.readouterr().err == ""


def test_http2_server_that_is_not_grpc_is_refused() -> None:
    # Its 404 reads as UNIMPLEMENTED, which a gRPC plugin without health also says.
    with pytest.raises(TransportError, match="not a gRPC server"):
        PluginProcess(scenario("http2_404"), tls=False).start()
