"""Suite-wide settings for every test directory."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from pyvider_rpcplugin_sync._constants import SOCKET_DIR_PREFIX

# What a plugin or host of any language leaves in TMPDIR when it is not cleaned up:
# our socket directories, and go-plugin 1.0.1's "plugin<digits>" sockets.
LEFTOVER = re.compile(rf"{re.escape(SOCKET_DIR_PREFIX)}.*|plugin\d+")


@pytest.fixture(autouse=True, scope="session")
def private_tmpdir() -> Iterator[None]:
    """Every process the suite starts gets one short, private TMPDIR, checked at the end:
    a socket directory or socket that a test's plugins or hosts left behind fails the run."""
    saved = os.environ.get("TMPDIR")
    directory = tempfile.mkdtemp(prefix="pyv-suite-", dir="/tmp")
    os.environ["TMPDIR"] = directory
    tempfile.tempdir = None  # gettempdir() caches its answer: make it read TMPDIR again
    try:
        yield
        left = sorted(name for name in os.listdir(directory) if LEFTOVER.fullmatch(name))
        assert left == [], f"sockets or socket directories left in TMPDIR: {left}"
    finally:
        if saved is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = saved
        tempfile.tempdir = None
        shutil.rmtree(directory, ignore_errors=True)


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
