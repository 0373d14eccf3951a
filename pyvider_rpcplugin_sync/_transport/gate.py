"""The gate of a channel's application calls: counted in flight, refused once closed,
drained by ``close()`` (see ``guard.py``, whose call frame steps it)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

from .._errors import RPCPluginError


def _count(counter: itertools.count[int]) -> int:
    """The value ``next(counter)`` would return, without taking it."""
    return int(repr(counter)[6:-1])  # "count(12)"


class CallGate:
    """The application's calls on one channel: counted in flight, refused once closed,
    drained. The call frame steps ``started`` before it reads ``open`` and ``finished``
    when the call ends, so a call that saw the gate open is always counted by
    ``drain``, and a call that ends while the gate is closed wakes it."""

    __slots__ = ("_idle", "_refusal", "finished", "open", "started")

    def __init__(self, refusal: Callable[[], RPCPluginError]) -> None:
        self.open = True
        self.started: itertools.count[int] = itertools.count()
        self.finished: itertools.count[int] = itertools.count()
        self._refusal = refusal
        self._idle = threading.Condition()

    def in_flight(self) -> int:
        return _count(self.started) - _count(self.finished)

    def refusal(self) -> RPCPluginError:
        """The error a call made after ``close`` raises."""
        return self._refusal()

    def close(self) -> None:
        """Refuse new calls from now on (the calls in flight go on)."""
        self.open = False

    def left(self) -> None:
        """A call ended while the gate is closed: let ``drain`` look again."""
        with self._idle:
            self._idle.notify_all()

    def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the calls in flight; how many still run."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while (running := self.in_flight()) > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return running
                self._idle.wait(remaining)
        return 0
