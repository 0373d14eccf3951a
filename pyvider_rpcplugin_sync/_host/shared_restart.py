"""SharedPlugin's restarts: the record of failures that sets the backoff and the cap
(``Failures``, pure: it is given the time and the jitter), and the background thread
that restarts a plugin after its backoff (``BackgroundRestart``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .._constants import RESTART_JITTER
from .._errors import PluginDown, RPCPluginError

logger = logging.getLogger("pyvider_rpcplugin_sync.shared")


class Failures:
    """Consecutive failed starts and early deaths: the pause before the next attempt,
    and whether ``max_start_failures`` of them in a row mean the plugin stays down."""

    def __init__(self, first: float, most: float, cap: int | None) -> None:
        self.first, self.most, self.cap = first, most, cap
        self.count = 0  # in a row; a plugin that ran for ``most`` seconds resets it
        self.next_attempt = 0.0
        self.last_error: str | None = None

    @property
    def gave_up(self) -> bool:
        return self.cap is not None and self.count >= self.cap

    def delay(self, failures: int, jitter: float) -> float:
        """The pause after ``failures``: exponential up to the maximum, then "equal
        jitter" (``jitter`` in [0, 1]): a point in its upper half, so that hosts do
        not restart in lockstep."""
        if failures <= 0:
            return 0.0
        full = float(min(self.most, self.first * 2 ** (failures - 1)))
        fixed = full * (1 - RESTART_JITTER)
        return fixed + (full - fixed) * jitter

    def start_failed(self, error: str, now: float, jitter: float) -> float:
        """A start failed: the pause before the next attempt."""
        self.count += 1
        self.last_error = error
        pause = self.delay(self.count, jitter)
        self.next_attempt = now + pause
        return pause

    def died(self, error: str, uptime: float, now: float, jitter: float) -> float:
        """The plugin died after ``uptime`` s: the pause before its restart (none after
        the first death of a plugin that ran long enough)."""
        if uptime >= self.most:
            self.count = 0  # it ran long enough: this is no crash loop
        pause = self.delay(self.count, jitter)
        self.count += 1
        self.last_error = error
        self.next_attempt = now + pause
        return pause

    def started(self) -> None:
        self.last_error = None

    def reset(self) -> None:
        self.count = 0
        self.next_attempt = 0.0

    def down_error(self, name: str) -> PluginDown:
        return PluginDown(
            f"the plugin {name} stays down after {self.count} failures in a row (failed "
            f"starts, or deaths soon after a start; max_start_failures={self.cap}); "
            f"last: {self.last_error}",
            hint="fix what makes it fail, then call reset() on the SharedPlugin",
            attempts=self.count,
            last_error=self.last_error,
        )


def describe(exc: BaseException) -> str:
    """One line about an error, for logs and health (no stderr tail: it may be long)."""
    if isinstance(exc, RPCPluginError):
        code = getattr(exc, "returncode", None)
        suffix = f" [exit code {code}]" if code is not None else ""
        return f"{type(exc).__name__}: {exc.message}{suffix}"
    return f"{type(exc).__name__}: {exc}"


# What the restart thread does next: stop, wait that many seconds, or start now.
STOP, START = "stop", "start"
Step = Callable[[], "tuple[str, float]"]


class BackgroundRestart:
    """One thread that restarts the plugin once its backoff is over, so that the next
    request finds it running; started again when the plugin dies or a start fails."""

    def __init__(
        self, name: str, lock: threading.Lock, step: Step, start: Callable[[], object]
    ) -> None:
        self._name = name
        self._lock = lock  # the owner's
        self._step = step  # called under the lock: STOP, START, or seconds to wait
        self._start = start
        self._wake = threading.Event()  # set by close()
        self.thread: threading.Thread | None = None

    def kick(self) -> None:
        """Start the thread unless it runs (the caller holds the owner's lock)."""
        if self._wake.is_set() or self.thread is not None:
            return
        self.thread = threading.Thread(target=self._run, name=f"{self._name}-restart", daemon=True)
        self.thread.start()

    def stop(self, timeout: float) -> None:
        """No more restarts; wait up to ``timeout`` for a start under way to end."""
        self._wake.set()
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._lock:  # kick() sees the thread as running until it says STOP
                action, wait = (STOP, 0.0) if self._wake.is_set() else self._step()
                if action == STOP:
                    self.thread = None
                    return
            if action != START:
                self._wake.wait(wait)
                continue
            try:
                self._start()
            except Exception:  # noted and logged by the owner; the step says what next
                logger.debug("background start of plugin %s failed", self._name, exc_info=True)
                continue
