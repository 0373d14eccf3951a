"""A host session's stages, the one table of their transitions, and what a failure means.

``Lifecycle`` alone decides whether a failed call or a refused use raises
``PluginClosed`` (the plugin is closed, has exited, or belongs to the process
that forked us), ``PluginClosing`` (the call was cut by ``close()``) or is the
call's own error. It decides from the stage, which moves only on the session's
own events (start, exit seen by the death watch, close and its steps, abandon),
and from grpc status codes, never from grpc's message text.
"""

from __future__ import annotations

import enum
import logging
import threading
from typing import TYPE_CHECKING, Protocol

import grpc

from .._errors import PluginClosed, PluginClosing, RPCPluginError
from .._transport.guard import CUT_CODES

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger("pyvider_rpcplugin_sync.host")

# Objects that must never be finalized in this process: plugins abandoned after a fork.
ABANDONED: list[object] = []


class Stage(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"  # close() began: new calls refused, calls in flight go on
    CLOSING = "closing"  # the drain is over: Shutdown, grace, signals; cut calls are ours
    EXITED = "exited"  # the plugin went away while running; close() is still due
    CLOSED = "closed"
    ABANDONED = "abandoned"  # after a fork: the plugin belongs to the parent


class Event(enum.Enum):
    START = "start"
    STARTED = "started"
    START_FAILED = "start failed"
    EXIT = "exit"  # the death watch saw the plugin's process end
    CLOSE = "close"
    SHUTDOWN = "shutdown"  # close() ends the drain and asks the plugin to stop
    CLOSED = "closed"  # close() is done
    ABANDON = "abandon"


S, E = Stage, Event
# (stage, event) -> next stage. A pair not listed leaves the stage as it is
# (an exit after close, a second close); abandon wins from every stage.
TRANSITIONS: dict[tuple[Stage, Event], Stage] = {
    (S.NEW, E.START): S.STARTING,
    (S.NEW, E.CLOSE): S.CLOSED,
    (S.STARTING, E.STARTED): S.RUNNING,
    (S.STARTING, E.START_FAILED): S.CLOSED,
    (S.RUNNING, E.EXIT): S.EXITED,
    (S.RUNNING, E.CLOSE): S.DRAINING,
    (S.DRAINING, E.EXIT): S.EXITED,  # it died while draining: a crash, not our close
    (S.DRAINING, E.SHUTDOWN): S.CLOSING,
    (S.CLOSING, E.CLOSED): S.CLOSED,
    (S.EXITED, E.CLOSE): S.CLOSED,
    (S.EXITED, E.CLOSED): S.CLOSED,
    **{(stage, E.ABANDON): S.ABANDONED for stage in Stage},
}


class DeathWatch(Protocol):
    """What watches the plugin's process: a spawned child, or a reattached pid."""

    exited: threading.Event

    def dying(self) -> bool | None:
        """Whether the process began to exit; None where that cannot be told yet."""
        ...

    def exit_details(self) -> tuple[int | None, str]:
        """The exit code (None before exit) and the last lines of stderr."""
        ...

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code once the process exited (waiting up to ``timeout``), else None."""


class Lifecycle:
    """The stage of one session; thread-safe, read without a lock on the call path."""

    def __init__(self) -> None:
        self.stage = Stage.NEW
        self.watch: DeathWatch | None = None
        self.cut_by_close = False  # close() went past the drain with the plugin running
        self._lock = threading.Lock()

    def advance(self, event: Event) -> Stage:
        """Apply ``event``; the stage before it."""
        with self._lock:
            before = self.stage
            self.stage = after = TRANSITIONS.get((before, event), before)
            if after is Stage.CLOSING and before is not after:
                self.cut_by_close = True
            return before

    @property
    def usable(self) -> bool:
        return self.stage is Stage.RUNNING

    def call_failed(self, exc: BaseException, notice: float) -> bool:
        """Whether a failed call shows that the running plugin is gone (it then moves to
        ``EXITED``): only a cut call (UNAVAILABLE, CANCELLED) can, and the death watch
        must confirm it, waiting up to ``notice`` seconds for the exit, as the plugin's
        sockets close a moment before its exit can be waited for.
        """
        if self.stage not in _SERVING or not _cut(exc):
            return False
        watch = self.watch
        if watch is None or watch.dying() is False:
            return False  # alive: the application's own status, or the network's
        if not watch.exited.wait(notice):
            return False
        return self.advance(Event.EXIT) in _SERVING

    def closed_error(self) -> PluginClosed | None:
        """The ``PluginClosed`` a failed call raises, or None while the plugin serves.

        A call cut once ``close()`` went past its drain raises ``PluginClosing``."""
        stage = self.stage
        if stage is Stage.CLOSING or (stage is Stage.CLOSED and self.cut_by_close):
            return PluginClosing(
                "the call was cut by close(): it was still running when the drain ended",
                hint="give close() a longer drain_timeout=, or let calls end before closing",
            )
        if stage is Stage.DRAINING:
            return None  # the plugin still serves: the call's own failure
        error = self.refusal("call")
        return error if isinstance(error, PluginClosed) else None

    def refusal(self, what: str, *, has_stub: bool = True) -> RPCPluginError:
        """Why ``what`` (stub, channel, broker, ...) cannot be used now, as the error to raise."""
        stage = self.stage
        if stage is Stage.ABANDONED:  # first: after a fork, the stderr tail's lock may be held
            return PluginClosed(
                "this plugin belongs to the process that started it (abandoned after fork)",
                hint="start a new PluginProcess in this process",
            )
        code, tail = self.watch.exit_details() if self.watch is not None else (None, "")
        if stage is Stage.EXITED:
            return PluginClosed(
                "the plugin has exited",
                returncode=code,
                stderr_tail=tail,
                hint="it crashed or was killed; start a new PluginProcess",
            )
        if stage in (Stage.CLOSED, Stage.DRAINING, Stage.CLOSING):
            state = "closed" if stage is Stage.CLOSED else "closing"
            return PluginClosed(f"the plugin is {state}", returncode=code)
        if stage is not Stage.RUNNING:
            return RPCPluginError(
                "the plugin is not started",
                hint="use 'with PluginProcess(...) as plugin:' or start()",
            )
        if not has_stub:
            return RPCPluginError(
                "no stub class was given",
                hint=f"pass stub=YourStub, or use make_stub(YourStub) ({what})",
            )
        return RPCPluginError(f"the plugin cannot be used for {what} now")


# Stages in which the plugin serves the application's calls in flight.
_SERVING = frozenset({Stage.RUNNING, Stage.DRAINING})


def _cut(exc: BaseException) -> bool:
    code: Callable[[], object] | None = getattr(exc, "code", None)
    return isinstance(exc, grpc.RpcError) and callable(code) and code() in CUT_CODES


def notify_exit(callback: Callable[[int], None], code: int, name: str) -> None:
    """Run the user's ``on_exit`` callback; what it raises is logged."""
    try:
        callback(code)
    except Exception:
        logger.exception("on_exit callback of plugin %s failed", name)
