"""Opt-in circuit breaker for an alive plugin that fails or times out on every call.

``BreakerMachine`` is the state machine alone: no lock, no clock, no grpc; every
step is given the time. ``CircuitBreaker`` is the thread-safe object a user makes
(with an injectable clock), and ``interceptor()`` its grpc client interceptor, put on
the call path only when ``HostConfig(circuit_breaker=)`` asks for it.

- CLOSED: calls pass; ``threshold`` consecutive failures open the circuit.
- OPEN: calls fail fast with ``CircuitOpen`` until ``cool_down`` has passed.
- HALF_OPEN: up to ``trial_calls`` calls pass, one at a time or together; one
  failure opens the circuit again (a fresh cool-down), ``trial_calls`` successes
  close it. Other calls meanwhile fail fast.

A call's result counts only in the state (the "generation") that admitted it: a
slow call admitted before the circuit opened cannot close it.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import grpc

from .._constants import INTERNAL_SERVICES
from .._errors import CircuitOpen
from .._metrics.client import final_code

# A plugin that is broken, hung or overloaded, rather than a call the plugin refused
# on its merits (NOT_FOUND, INVALID_ARGUMENT, ...): an answer on its merits is a success.
DEFAULT_FAILURE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DATA_LOSS,
    }
)


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Outcome(enum.Enum):
    SUCCESS = "success"  # the plugin answered (OK, or a status on the call's merits)
    FAILURE = "failure"  # a status of ``failure_codes``
    NEUTRAL = "neutral"  # says nothing about the plugin: cancelled, or failed locally


class BreakerMachine:
    """The breaker's states and transitions; every method is given the time ``now``."""

    def __init__(self, threshold: int, cool_down: float, trial_calls: int) -> None:
        self.threshold = threshold
        self.cool_down = cool_down
        self.trial_calls = trial_calls
        self.state = BreakerState.CLOSED
        self.generation = 0  # moves on with every transition
        self.failures = 0  # consecutive failures while CLOSED
        self.opened_at = -math.inf
        self.trials = 0  # trial calls admitted in this HALF_OPEN
        self.passed = 0  # trial calls that succeeded in this HALF_OPEN
        self.opened = 0  # how often the circuit opened

    def admit(self, now: float) -> int | None:
        """Let a call through: the generation it reports its outcome with, or None."""
        if self.state is BreakerState.OPEN:
            if now - self.opened_at < self.cool_down:
                return None
            self._move(BreakerState.HALF_OPEN)
        if self.state is BreakerState.HALF_OPEN:
            if self.trials >= self.trial_calls:
                return None
            self.trials += 1
        return self.generation

    def passes_stream(self, now: float) -> bool:
        """Whether a stream (never counted) may start: not while the cool-down runs."""
        return self.state is not BreakerState.OPEN or now - self.opened_at >= self.cool_down

    def settle(self, generation: int, outcome: Outcome, now: float) -> None:
        """The outcome of a call ``admit`` let through in ``generation``."""
        if generation != self.generation:
            return  # admitted in an earlier state: it says nothing about this one
        if self.state is BreakerState.CLOSED:
            if outcome is Outcome.SUCCESS:
                self.failures = 0
            elif outcome is Outcome.FAILURE:
                self.failures += 1
                if self.failures >= self.threshold:
                    self._open(now)
        elif self.state is BreakerState.HALF_OPEN:
            if outcome is Outcome.FAILURE:
                self._open(now)
            elif outcome is Outcome.NEUTRAL:
                self.trials -= 1  # its place goes to another trial call
            else:
                self.passed += 1
                if self.passed >= self.trial_calls:
                    self._move(BreakerState.CLOSED)

    def retry_in(self, now: float) -> float:
        """Seconds until the cool-down ends (0 unless OPEN)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.cool_down - (now - self.opened_at))

    def _open(self, now: float) -> None:
        self._move(BreakerState.OPEN)
        self.opened_at = now
        self.opened += 1

    def _move(self, state: BreakerState) -> None:
        self.state = state
        self.generation += 1
        self.failures = self.trials = self.passed = 0


def classify(code: grpc.StatusCode | None, failure_codes: frozenset[grpc.StatusCode]) -> Outcome:
    """What a call's final status says about the plugin."""
    if code is None or code is grpc.StatusCode.CANCELLED:
        return Outcome.NEUTRAL
    return Outcome.FAILURE if code in failure_codes else Outcome.SUCCESS


class CircuitBreaker:
    """Fail fast while a plugin fails every call; thread-safe; give it as
    ``HostConfig(circuit_breaker=)``.

    Args:
        threshold: consecutive failed calls that open the circuit.
        cool_down: seconds calls fail fast (``CircuitOpen``) once it opened.
        trial_calls: calls let through after the cool-down; as many successes close
            the circuit, one failure opens it again.
        failure_codes: the status codes that count as failures; default UNAVAILABLE,
            DEADLINE_EXCEEDED (a hung plugin), INTERNAL, UNKNOWN (a handler raised),
            DATA_LOSS. Other codes mean the plugin answered; CANCELLED counts for nothing.
        clock: seconds, monotonic (tests inject their own).

    One breaker belongs to one plugin: a ``SharedPlugin`` keeps it across restarts.
    Unary and stream-unary calls are counted; a response stream is refused while the
    circuit is open and otherwise passes uncounted (its end may be hours away).
    """

    def __init__(
        self,
        threshold: int = 5,
        cool_down: float = 30.0,
        trial_calls: int = 1,
        *,
        failure_codes: Iterable[grpc.StatusCode] = DEFAULT_FAILURE_CODES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, count in (("threshold", threshold), ("trial_calls", trial_calls)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{name} must be an int of 1 or more, not {count!r}")
        if isinstance(cool_down, bool) or not isinstance(cool_down, (int, float)):
            raise TypeError(f"cool_down must be seconds, not {cool_down!r}")
        if not (math.isfinite(cool_down) and cool_down > 0):
            raise ValueError(f"cool_down must be seconds above 0, not {cool_down!r}")
        codes = frozenset(failure_codes)
        if not codes or not all(isinstance(code, grpc.StatusCode) for code in codes):
            raise ValueError("failure_codes must be grpc.StatusCode values (at least one)")
        if grpc.StatusCode.OK in codes:
            raise ValueError("failure_codes cannot hold OK")
        self.failure_codes = codes
        self._clock = clock
        self._lock = threading.Lock()
        self._machine = BreakerMachine(threshold, float(cool_down), trial_calls)
        self._last_failure: str | None = None

    @property
    def state(self) -> BreakerState:
        """The state now (an OPEN circuit whose cool-down ended shows HALF_OPEN)."""
        with self._lock:
            machine = self._machine
            if machine.state is BreakerState.OPEN and machine.retry_in(self._clock()) == 0:
                return BreakerState.HALF_OPEN
            return machine.state

    @property
    def times_opened(self) -> int:
        """How often the circuit opened since the breaker was made."""
        return self._machine.opened

    def admit(self, method: str) -> int:
        """Let a call to ``method`` through: its generation; ``CircuitOpen`` if refused."""
        with self._lock:
            now = self._clock()
            generation = self._machine.admit(now)
            if generation is not None:
                return generation
            raise self._refusal(method, now)

    def check_stream(self, method: str) -> None:
        """``CircuitOpen`` while the cool-down runs; streams pass otherwise."""
        with self._lock:
            now = self._clock()
            if not self._machine.passes_stream(now):
                raise self._refusal(method, now)

    def settle(self, generation: int, code: grpc.StatusCode | None) -> None:
        """The final status of a call ``admit`` let through (None: it failed locally)."""
        outcome = classify(code, self.failure_codes)
        with self._lock:
            if outcome is Outcome.FAILURE and code is not None:
                self._last_failure = code.name
            self._machine.settle(generation, outcome, self._clock())

    def interceptor(self) -> BreakerInterceptor:
        """The grpc client interceptor that puts this breaker on a channel's calls."""
        return BreakerInterceptor(self)

    def _refusal(self, method: str, now: float) -> CircuitOpen:
        machine = self._machine
        wait = machine.retry_in(now)
        if machine.state is BreakerState.OPEN:
            when = f"trial calls in {wait:.1f} s"
        else:
            when = f"{machine.trial_calls} trial call(s) are running"
        return CircuitOpen(
            f"{method} refused: the circuit breaker is open after {machine.threshold} "
            f"failed calls in a row (last: {self._last_failure}); {when}",
            hint="the plugin fails its calls: see its log; CircuitBreaker(cool_down=, "
            "threshold=) set how soon it is tried again",
            retry_in=wait,
        )

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.state.value}>"


class BreakerInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """A ``CircuitBreaker`` on the application's calls; the library's services pass."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker

    def _counted(self, continuation: Any, details: Any, request: Any) -> Any:
        method: str = details.method
        if method[1 : method.rfind("/")] in INTERNAL_SERVICES:
            return continuation(details, request)
        breaker = self._breaker
        generation = breaker.admit(method)
        try:
            outcome = continuation(details, request)
        except BaseException:
            breaker.settle(generation, None)
            raise
        outcome.add_done_callback(lambda call: breaker.settle(generation, final_code(call)))  # pyright: ignore[reportUnknownLambdaType]
        return outcome

    def _stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self._breaker.check_stream(details.method)
        return continuation(details, request)

    def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return self._counted(continuation, client_call_details, request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return self._counted(continuation, client_call_details, request_iterator)

    def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return self._stream(continuation, client_call_details, request)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return self._stream(continuation, client_call_details, request_iterator)
