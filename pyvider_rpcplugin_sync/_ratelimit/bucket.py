"""Token bucket rate limiting: a pure core and a thread-safe bucket (interceptors: .interceptors).

The arithmetic is pure functions of ``(state, now)``, tested without threads or
clocks; ``TokenBucket`` wraps it with one lock. Waiting is by *reservation*:
a caller short of tokens takes them out of the future by moving the refill stamp
forward, then sleeps outside the lock. Every waiter wakes once, in arrival order,
and the token count never goes below zero.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Final, NamedTuple

from .._constants import (
    DEFAULT_RATE_LIMIT_REQUESTS_PER_SECOND,
    ENV_RATE_LIMIT_BURST_CAPACITY,
    ENV_RATE_LIMIT_ENABLED,
    ENV_RATE_LIMIT_REQUESTS_PER_SECOND,
)
from .._errors import RateLimited

logger = logging.getLogger("pyvider_rpcplugin_sync.ratelimit")

_TRUE_WORDS: Final = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS: Final = frozenset({"false", "0", "no", "off", ""})


# --- pure core ------------------------------------------------------------------


class BucketState(NamedTuple):
    """Tokens held as of ``stamp`` (clock seconds); refill accrues only after ``stamp``."""

    tokens: float
    stamp: float


def refill(state: BucketState, now: float, rate: float, capacity: float) -> BucketState:
    """The state as of ``now``: tokens accrued since ``stamp``, capped at ``capacity``.

    A ``now`` earlier than ``stamp`` (clock went backwards, or a reservation
    holds future tokens) adds nothing and keeps the later stamp, so the same
    interval is never credited twice.
    """
    tokens, stamp = state
    if now <= stamp:
        return state
    tokens += (now - stamp) * rate
    return BucketState(tokens if tokens < capacity else capacity, now)


def take(
    state: BucketState, now: float, n: float, rate: float, capacity: float
) -> tuple[bool, BucketState]:
    """Take ``n`` tokens if the bucket holds them as of ``now``; never waits."""
    current = refill(state, now, rate, capacity)
    if current.tokens >= n:
        # tokens >= n implies tokens - n >= 0 exactly in IEEE arithmetic.
        return True, BucketState(current.tokens - n, current.stamp)
    return False, current


def reserve(
    state: BucketState, now: float, n: float, rate: float, capacity: float
) -> tuple[float, BucketState]:
    """Take ``n`` tokens now or out of the future: ``(seconds to wait, new state)``.

    When the bucket is short, the bucket is emptied and its stamp moves to the
    moment the missing tokens will have accrued; the caller sleeps until then.
    ``n > capacity`` can never be held at once: ``(inf, state)`` unchanged.
    """
    if n > capacity:
        return math.inf, state
    current = refill(state, now, rate, capacity)
    if current.tokens >= n:
        return 0.0, BucketState(current.tokens - n, current.stamp)
    ready = current.stamp + (n - current.tokens) / rate
    return ready - now, BucketState(0.0, ready)


def wait_time(state: BucketState, now: float, n: float, rate: float, capacity: float) -> float:
    """Seconds from ``now`` until ``n`` tokens could be granted (0 if they are there)."""
    return reserve(state, now, n, rate, capacity)[0]


# --- thread-safe bucket ---------------------------------------------------------


def _positive_finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"TokenBucket {name} must be a number, got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"TokenBucket {name} must be a positive finite number, got {value!r}")
    return number


class TokenBucket:
    """A token bucket shared by many threads: starts full, refills at ``rate``/s.

    ``clock`` (monotonic seconds) and ``sleep`` are injectable for tests.
    """

    __slots__ = ("_capacity", "_clock", "_lock", "_rate", "_sleep", "_stamp", "_tokens")

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = _positive_finite("rate", rate)
        self._capacity = _positive_finite("capacity", capacity)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # The state as two plain attributes (not a BucketState) for try_acquire's speed.
        self._tokens = self._capacity
        self._stamp = clock()

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def capacity(self) -> float:
        """The most tokens the bucket holds (the burst size)."""
        return self._capacity

    @property
    def state(self) -> BucketState:
        """The stored state (not refilled): for tests and diagnostics."""
        with self._lock:
            return BucketState(self._tokens, self._stamp)

    @property
    def available(self) -> float:
        """Tokens that could be taken right now (refilled as of now)."""
        with self._lock:
            state = BucketState(self._tokens, self._stamp)
            return refill(state, self._clock(), self._rate, self._capacity).tokens

    def try_acquire(self, n: float = 1) -> bool:
        """Take ``n`` tokens if they are there; never blocks."""
        if not 0 < n <= self._capacity:
            raise self._bad_n(n)
        # take() inlined on plain attributes: calling it costs twice as much
        # (budget 2 us). A property test checks this path against take().
        with self._lock:
            now = self._clock()
            tokens = self._tokens
            if now > self._stamp:
                tokens += (now - self._stamp) * self._rate
                if tokens > self._capacity:  # noqa: PLR1730 - min() costs a call here
                    tokens = self._capacity
                self._stamp = now
            if tokens >= n:
                self._tokens = tokens - n
                return True
            self._tokens = tokens
            return False

    def acquire(self, n: float = 1, timeout: float | None = None) -> float:
        """Take ``n`` tokens, sleeping (outside the lock) until they are there; the
        seconds it slept (a caller with a deadline can take them off it).

        Raises ``RateLimited`` at once, without sleeping and without taking
        anything, when the tokens cannot be had within ``timeout`` seconds.
        """
        if not 0 < n <= self._capacity:
            raise self._bad_n(n)
        if timeout is not None:
            if math.isnan(timeout):
                raise ValueError("timeout must be a number of seconds or None, got nan")
            timeout = max(timeout, 0.0)  # an expired deadline means "only if there now"
        with self._lock:
            state = BucketState(self._tokens, self._stamp)
            wait, state = reserve(state, self._clock(), n, self._rate, self._capacity)
            if timeout is None or wait <= timeout:
                self._tokens, self._stamp = state
        if timeout is not None and wait > timeout:
            raise RateLimited(
                f"rate limit: {n:g} token(s) not available within {timeout:g} s "
                f"(needs {wait:.3g} s at {self._rate:g}/s, burst {self._capacity:g})",
                hint="allow a longer timeout, make calls less often, or raise the limit",
            )
        if wait > 0:
            self._sleep(wait)
        return wait

    def _bad_n(self, n: object) -> ValueError:
        return ValueError(
            f"token count must be > 0 and <= the bucket's capacity "
            f"({self._capacity:g}), got {n!r}; more than capacity can never be granted"
        )

    def __repr__(self) -> str:
        return (
            f"TokenBucket(rate={self._rate!r}/s, capacity={self._capacity:g}, "
            f"available={round(self.available, 2):g})"
        )


# --- configuration from the environment --------------------------------------------


def _env_number(environ: Mapping[str, str], name: str) -> float | None:
    text = environ.get(name, "").strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number") from None
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name}={text!r} must be a positive finite number")
    return number


def bucket_from_env(environ: Mapping[str, str] | None = None) -> TokenBucket | None:
    """The bucket that ``PLUGIN_RATE_LIMIT_*`` asks for, or None when not enabled.

    Defaults when enabled: 100 requests/s and a burst equal to the rate (at least 1).
    Every variable that is set is checked, enabled or not: a typo must not sit
    unnoticed until someone turns the limit on.
    """
    env = os.environ if environ is None else environ
    enabled = env.get(ENV_RATE_LIMIT_ENABLED, "").strip().lower()
    if enabled not in _TRUE_WORDS and enabled not in _FALSE_WORDS:
        raise ValueError(
            f"{ENV_RATE_LIMIT_ENABLED}={env[ENV_RATE_LIMIT_ENABLED]!r}: "
            "expected true/1/yes/on or false/0/no/off"
        )
    rate = _env_number(env, ENV_RATE_LIMIT_REQUESTS_PER_SECOND)
    burst = _env_number(env, ENV_RATE_LIMIT_BURST_CAPACITY)
    if burst is not None and burst < 1:
        raise ValueError(
            f"{ENV_RATE_LIMIT_BURST_CAPACITY}={burst:g} must be at least 1 (a call needs a token)"
        )
    if enabled in _FALSE_WORDS:
        return None
    if rate is None:
        rate = DEFAULT_RATE_LIMIT_REQUESTS_PER_SECOND
    return TokenBucket(rate, max(rate, 1.0) if burst is None else burst)
