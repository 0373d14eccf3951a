"""Suite-wide settings for every test directory."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def private_kv_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The bundled KV plugin persists values in a per-user state directory by default;
    every plugin the suite starts (they inherit this environment) uses a private one."""
    saved = os.environ.get("KV_STORE_DIR")
    os.environ["KV_STORE_DIR"] = str(tmp_path_factory.mktemp("kv-store"))
    try:
        yield
    finally:
        if saved is None:
            del os.environ["KV_STORE_DIR"]
        else:
            os.environ["KV_STORE_DIR"] = saved


# pytester runs the library's own pytest plugin (the rpcplugin_* fixtures) in a
# fresh pytest, to see a test fail on a leaked process.
pytest_plugins = ["pytester"]
