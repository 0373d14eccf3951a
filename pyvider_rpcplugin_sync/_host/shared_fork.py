"""SharedPlugin across ``os.fork()``: the hook that makes each instance forget, in the
child, the plugin its parent started (``SharedPlugin._forget_after_fork``)."""

from __future__ import annotations

import os
import threading
import weakref
from typing import Protocol


class Forgetful(Protocol):
    def _forget_after_fork(self) -> None: ...


_INSTANCES: weakref.WeakSet[Forgetful] = weakref.WeakSet()
# A forked child keeps its parent's plugins and calls referenced, so that no destructor
# or finalizer (channel close, SIGKILL of the plugin, removal of its socket) runs there.
ABANDONED: list[object] = []


def _after_fork_in_child() -> None:
    for shared in list(_INSTANCES):
        shared._forget_after_fork()


_hooks_lock = threading.Lock()
_hooks: list[bool] = []


def watch(shared: Forgetful) -> None:
    """Make ``shared`` forget its parent's plugin in a forked child. The fork hook is
    installed with the first SharedPlugin (not at import); interpreter exit closes a
    SharedPlugin through ``at_exit``, with every other open plugin."""
    with _hooks_lock:
        if not _hooks:
            _hooks.append(True)
            os.register_at_fork(after_in_child=_after_fork_in_child)
    _INSTANCES.add(shared)
