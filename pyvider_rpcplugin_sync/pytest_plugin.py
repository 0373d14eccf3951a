"""pytest fixtures for plugin and host tests, loaded by pytest through the
``pytest11`` entry point once the library is installed (see ``.testing``).

- ``rpcplugin_server(registrars, *, stub=None, tls=False, ...)``: serves a plugin's
  registrars in this process and returns an ``.testing.InProcessPlugin``
  with ``.stub`` and ``.channel`` on a real channel; closed after the test.
- ``rpcplugin_process(cmd, **PluginProcess options)``: a started
  ``PluginProcess``, closed after the test; the test fails when a process of
  the plugin outlives that close.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .testing import InProcessPluginFactory, PluginProcessFactory

__all__ = ["rpcplugin_process", "rpcplugin_server"]


@pytest.fixture
def rpcplugin_server() -> Iterator[InProcessPluginFactory]:
    """A factory: ``rpcplugin_server(register, stub=KVStub)`` -> InProcessPlugin.

    Annotate it as ``pyvider_rpcplugin_sync.testing.InProcessPluginFactory``."""
    from .testing import InProcessPluginFactory

    factory = InProcessPluginFactory()
    yield factory
    factory.close_all()


@pytest.fixture
def rpcplugin_process() -> Iterator[PluginProcessFactory]:
    """A factory: ``rpcplugin_process(cmd, stub=KVStub, ...)`` -> a started PluginProcess
    (annotate it as ``pyvider_rpcplugin_sync.testing.PluginProcessFactory``).

    After the test every plugin made is closed; a plugin process, or any process of
    its process group, still running then fails the test (and is killed).
    """
    from .testing import PluginProcessFactory

    factory = PluginProcessFactory()
    yield factory
    leaks = factory.close_all()
    if leaks:
        pytest.fail("plugin processes outlived their close:\n" + "\n".join(leaks))
