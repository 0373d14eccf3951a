"""The plugin side: PluginServer, serve/run_plugin and debug (reattach) mode."""
