"""A plugin never shares its TCP port with another server (grpc sets SO_REUSEPORT by default).

With SO_REUSEPORT on both sides, two plugins that pick the same free port at the
same moment both bind it, and the kernel splits the connections between them:
a host then reaches the wrong process. The probe-then-bind window is forced
here by skipping the probe.
"""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest

from pyvider_rpcplugin_sync import HandshakeConfig, PluginServer, TransportError
from pyvider_rpcplugin_sync._transport import listener as _listener
from pyvider_rpcplugin_sync.examples import echo_plugin

pytestmark = pytest.mark.timeout(30)

HANDSHAKE = HandshakeConfig("TEST_COOKIE", "v", (1,))


def test_a_port_held_by_a_reuseport_server_is_not_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    other = grpc.server(futures.ThreadPoolExecutor(1), options=[("grpc.so_reuseport", 1)])
    port = other.add_insecure_port("127.0.0.1:0")
    other.start()
    try:
        monkeypatch.setattr(_listener, "_port_free", lambda candidate: True)
        env = {
            "TEST_COOKIE": "v",
            "PLUGIN_PROTOCOL_VERSIONS": "1",
            "PLUGIN_TRANSPORT": "tcp",
            "PLUGIN_MIN_PORT": str(port),
            "PLUGIN_MAX_PORT": str(port),
        }
        with (
            pytest.raises(TransportError, match="no free TCP port"),
            PluginServer(echo_plugin.register, handshake=HANDSHAKE, environ=env),
        ):
            pass
    finally:
        other.stop(None)
