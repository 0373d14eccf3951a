"""The metrics hook both sides call, and ``CallStats``, a thread-safe one in memory."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import grpc


@runtime_checkable
class CallMetrics(Protocol):
    """What ``HostConfig(metrics=)`` and ``PluginServer(metrics=)`` call for each call.

    ``started`` when a call begins, ``ended`` once when it is over, with its final
    status (``None`` for a call that failed before it reached the other side, such as
    one the circuit breaker or a closed plugin refused) and its duration in seconds.
    Both run on the call's own thread or a grpc thread: keep them quick, never block.
    In-flight calls are the ``started`` not yet ``ended``.
    """

    def started(self, method: str) -> None: ...

    def ended(self, method: str, code: grpc.StatusCode | None, seconds: float) -> None: ...


@dataclass
class MethodStats:
    """The figures of one method (``/pkg.Service/Method``)."""

    calls: int = 0  # ended
    in_flight: int = 0
    errors: dict[str, int] = field(default_factory=dict[str, int])  # by status code name
    seconds_total: float = 0.0
    seconds_max: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "in_flight": self.in_flight,
            "errors": dict(self.errors),
            "seconds_total": self.seconds_total,
            "seconds_max": self.seconds_max,
        }


# The name a call that never reached the other side is counted under.
LOCAL_FAILURE = "LOCAL"


class CallStats:
    """A ``CallMetrics`` that keeps per-method counts, errors by status code, latency
    and in-flight calls in memory; thread-safe. ``snapshot()`` is JSON-ready."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._methods: dict[str, MethodStats] = {}

    def started(self, method: str) -> None:
        with self._lock:
            stats = self._methods.get(method)
            if stats is None:
                stats = self._methods[method] = MethodStats()
            stats.in_flight += 1

    def ended(self, method: str, code: grpc.StatusCode | None, seconds: float) -> None:
        with self._lock:
            stats = self._methods.get(method)
            if stats is None:
                stats = self._methods[method] = MethodStats(in_flight=1)
            stats.in_flight -= 1
            stats.calls += 1
            stats.seconds_total += seconds
            stats.seconds_max = max(stats.seconds_max, seconds)
            if code is not grpc.StatusCode.OK:
                name = LOCAL_FAILURE if code is None else code.name
                stats.errors[name] = stats.errors.get(name, 0) + 1

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """``{method: {"calls", "in_flight", "errors", "seconds_total", "seconds_max"}}``."""
        with self._lock:
            return {method: stats.as_dict() for method, stats in sorted(self._methods.items())}


def check_metrics(metrics: object) -> None:
    """A TypeError unless ``metrics`` has the hook's two methods."""
    if not isinstance(metrics, CallMetrics):
        raise TypeError(
            f"metrics must have started(method) and ended(method, code, seconds): {metrics!r}"
        )
