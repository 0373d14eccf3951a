"""Runnable example plugins and hosts (echo, kv) used by the demo, the docs and the tests."""
