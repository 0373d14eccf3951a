"""Interpreter exit: every plugin session still open gets the normal close, all at once.

A session registers here when it starts (a ``SharedPlugin`` when it is made) and
leaves when it closes. The first registration installs one ``atexit`` hook (not
at import). At exit the hook closes each open session of this process in a
thread of its own (the drain, ``Shutdown``, ``shutdown_grace``, SIGTERM, SIGKILL: what
``close()`` does) and waits for all of them together, at most ``exit_bound``; a
plugin still there then gets SIGKILL, and the supervisor removes what is left
once this process has gone. Sessions inherited through ``fork`` belong to the
parent and are never touched.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Protocol

from .._constants import DEFAULT_CONTROLLER_TIMEOUT, DEFAULT_TERMINATE_GRACE

logger = logging.getLogger("pyvider_rpcplugin_sync.host")


class Session(Protocol):
    """What the exit hook needs of a session."""

    def close(self, grace: float | None = None) -> None: ...

    def _kill_at_exit(self) -> None:
        """SIGKILL what is left of the plugin, without waiting or taking a lock."""


class _Registry:
    """The open sessions (each with the pid that registered it, and its grace)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: weakref.WeakKeyDictionary[Session, tuple[int, float]] = (
            weakref.WeakKeyDictionary()
        )
        self.installed = False


_registry = _Registry()


def close_at_exit(session: Session, grace: float) -> None:
    """Close ``session`` at interpreter exit; ``grace`` is its ``drain_timeout`` plus its
    ``shutdown_grace``, the longest its close waits before signals."""
    with _registry.lock:
        if not _registry.installed:
            _registry.installed = True
            _at_exit(_close_all)
            os.register_at_fork(after_in_child=_after_fork_in_child)
        _registry.open[session] = (os.getpid(), grace)


def _at_exit(hook: Callable[[], None]) -> None:
    """Run ``hook`` at interpreter exit while threads can still start (it closes the
    plugins in parallel): from Python 3.12 on, ``atexit`` hooks cannot start threads.
    threading's own exit hooks run first, as concurrent.futures' do."""
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # an interpreter without it: threads still start in atexit hooks
        atexit.register(hook)
    else:
        register(hook)


def _after_fork_in_child() -> None:
    _registry.lock = threading.Lock()  # another thread may have held it at the fork


def forget(session: Session) -> None:
    """``session`` was closed (or abandoned): nothing to do for it at exit."""
    with _registry.lock:
        _registry.open.pop(session, None)


def exit_bound(graces: Iterable[float]) -> float:
    """The longest exit waits for its plugins: the longest grace (drain and
    ``shutdown_grace``), plus a
    ``Shutdown`` that hangs to its timeout, SIGTERM's grace and a second for the rest."""
    return max(graces, default=0.0) + DEFAULT_CONTROLLER_TIMEOUT + DEFAULT_TERMINATE_GRACE + 1.0


def _close_all() -> None:
    pid = os.getpid()
    with _registry.lock:
        entries = list(_registry.open.items())
    mine = [(s, grace) for s, (owner, grace) in entries if owner == pid]
    if not mine:
        return
    deadline = time.monotonic() + exit_bound(grace for _, grace in mine)
    closing: list[tuple[Session, threading.Thread]] = []
    for index, (session, _) in enumerate(mine):
        thread = threading.Thread(
            target=_close, args=(session,), name="pyvider-exit-close", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # Python 3.12.0 and 3.12.1 start no thread at exit
            _close_in_turn([s for s, _ in mine[index:]], deadline)
            break
        closing.append((session, thread))
    for session, thread in closing:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            logger.warning("closing plugin %r at exit took too long; killing it", session)
            session._kill_at_exit()  # pyright: ignore[reportPrivateUsage]  (Session's)


def _close_in_turn(sessions: list[Session], deadline: float) -> None:
    """One after the other in this thread; past ``deadline``, the rest are killed."""
    for session in sessions:
        if time.monotonic() < deadline:
            _close(session)
        else:
            logger.warning("no time left to close plugin %r at exit; killing it", session)
            session._kill_at_exit()  # pyright: ignore[reportPrivateUsage]  (Session's)


def _close(session: Session) -> None:
    try:
        session.close()
    except Exception:
        logger.warning("closing plugin %r at exit failed", session, exc_info=True)
