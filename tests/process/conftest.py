"""Process tests: real subprocesses, real sockets, real grpc.

Every test here fails if it leaves a child process behind (running or zombie),
found by scanning /proc rather than by waiting, so an unreaped child counts too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from proc_scan import no_child_left_behind  # noqa: F401  (an autouse fixture)
from process_helpers import Records


@pytest.fixture
def plugin_records() -> Iterator[Records]:
    """Every record of the plugin loggers (pyvider_rpcplugin_sync.plugin.*)."""
    handler = Records()
    target = logging.getLogger("pyvider_rpcplugin_sync.plugin")
    old_level = target.level
    target.addHandler(handler)
    target.setLevel(1)
    try:
        yield handler
    finally:
        target.removeHandler(handler)
        target.setLevel(old_level)
