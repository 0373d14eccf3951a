"""The echo service through ``pyvider-rpcplugin`` 0.5.x: its plugin and its (asyncio) client.

``plugin.py`` is a pyvider plugin (``RPCPluginServer``) serving the same Echo
service as ``pyvider_rpcplugin_sync.examples.echo_plugin``; ``worker.py`` is a
host written with pyvider's ``plugin_client``, driven over stdin/stdout by the
benchmark runner so its blocks interleave with the other columns'.
"""
