"""Our KV plugin with the library's *default* handshake, for pyvider-rpcplugin interop.

``HandshakeConfig()`` defaults to pyvider-rpcplugin's own defaults (cookie
``PLUGIN_MAGIC_COOKIE=test_cookie_value``, app version 1), so a pyvider host with
no configuration at all loads this plugin. The servicer is the example's
(``pyvider_rpcplugin_sync.examples.kv_plugin``); only the handshake differs.
"""

from __future__ import annotations

from pyvider_rpcplugin_sync import run_plugin
from pyvider_rpcplugin_sync.examples.kv_plugin import register

if __name__ == "__main__":
    raise SystemExit(run_plugin(register))
