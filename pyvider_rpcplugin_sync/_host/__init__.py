"""The host side: PluginProcess, SharedPlugin and what only they use."""
