"""A plugin of two application protocol versions: 1 serves KV, 2 serves Echo.

Cookie ``BASIC_PLUGIN=hello`` (go-plugin's KV example). Which service answers tells
a test which version was negotiated, beyond the handshake line's field 2.
"""

from __future__ import annotations

from pyvider_rpcplugin_sync import HandshakeConfig, run_plugin
from pyvider_rpcplugin_sync.examples import echo_plugin, kv_plugin

HANDSHAKE = HandshakeConfig("BASIC_PLUGIN", "hello", (1, 2))

if __name__ == "__main__":
    raise SystemExit(
        run_plugin({1: kv_plugin.register, 2: echo_plugin.register}, handshake=HANDSHAKE)
    )
