"""TokenBucket under real threads and the real monotonic clock."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest

from pyvider_rpcplugin_sync._errors import RateLimited
from pyvider_rpcplugin_sync._ratelimit.bucket import TokenBucket
from pyvider_rpcplugin_sync._ratelimit.interceptors import RateLimitServerInterceptor

pytestmark = pytest.mark.timeout(60)


def _run_threads(count: int, target: Any, on_start: Any = None) -> None:
    # on_start runs once all threads are up, so thread start-up is not measured.
    start = threading.Barrier(count, action=on_start)
    threads = [threading.Thread(target=target, args=(i, start)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)


def test_32_contending_threads_get_the_rate_within_one_percent() -> None:
    rate, capacity, duration = 2000.0, 50.0, 1.5
    # A pause longer than this in every thread at once can overflow a full bucket.
    stall = capacity / rate / 2
    grants = [0] * 32
    pauses: list[list[tuple[float, float]]] = [[] for _ in range(32)]
    run: dict[str, Any] = {}

    def on_start() -> None:
        run["t0"] = time.monotonic()
        run["bucket"] = TokenBucket(rate, capacity)
        run["t_end"] = run["t0"] + duration

    def spin(index: int, start: threading.Barrier) -> None:
        start.wait()
        bucket, t_end = run["bucket"], run["t_end"]
        got, mine = 0, pauses[index]
        last = time.monotonic()
        while (now := time.monotonic()) < t_end:
            if now - last > stall:  # this thread was descheduled (a loaded machine)
                mine.append((last, now))
            last = now
            if bucket.try_acquire():
                got += 1
        if t_end - last > stall:
            mine.append((last, t_end))
        grants[index] = got

    _run_threads(32, spin, on_start)
    t_joined = time.monotonic()
    total = sum(grants)
    t0, t_end = run["t0"], run["t_end"]
    # Hard bound: the bucket can never hand out more than it held plus its refill.
    assert total <= capacity + rate * (t_joined - t0)
    # Tokens refilled while no thread was asking may overflow a full bucket: that is the
    # bucket's contract, not a loss; the rest of the rate must reach the threads.
    unasked = _common_time(pauses)
    expected = capacity + rate * (t_end - t0 - unasked)
    assert total >= 0.99 * expected, (total, expected, unasked)
    assert sum(1 for g in grants if g) > 1  # the threads really contended


def _common_time(pauses: list[list[tuple[float, float]]]) -> float:
    """Seconds during which every thread was inside one of its pauses."""
    common = pauses[0]
    for other in pauses[1:]:
        common = [
            (max(a, c), min(b, d)) for a, b in common for c, d in other if max(a, c) < min(b, d)
        ]
    return sum(b - a for a, b in common)


def test_many_threads_acquire_with_waiting_keep_to_the_rate() -> None:
    rate, capacity, threads, per_thread = 200.0, 5.0, 16, 10
    done: list[float] = []
    lock = threading.Lock()
    t0 = time.monotonic()
    bucket = TokenBucket(rate, capacity)

    def worker(_index: int, start: threading.Barrier) -> None:
        start.wait()
        for _ in range(per_thread):
            bucket.acquire(timeout=10)
            stamp = time.monotonic()
            with lock:
                done.append(stamp)

    _run_threads(threads, worker)
    done.sort()
    assert len(done) == threads * per_thread
    # The k-th grant can never come before the bucket had k tokens to give.
    for k, stamp in enumerate(done, start=1):
        assert k <= capacity + rate * (stamp - t0) + 1e-6
    ideal = (len(done) - capacity) / rate
    elapsed = done[-1] - t0
    # Waiters wake once, at their turn: no herd, no oversleeping.
    assert ideal - 0.01 <= elapsed <= ideal * 1.25 + 0.2, (elapsed, ideal)


def test_waiters_that_cannot_make_their_timeout_fail_at_once() -> None:
    bucket = TokenBucket(100.0, 1.0)
    bucket.acquire()
    timeout = 0.5
    outcomes: list[tuple[bool, float]] = []
    lock = threading.Lock()

    def worker(_index: int, start: threading.Barrier) -> None:
        start.wait()
        began = time.monotonic()
        try:
            bucket.acquire(timeout=timeout)
            ok = True
        except RateLimited:
            ok = False
        with lock:
            outcomes.append((ok, time.monotonic() - began))

    _run_threads(100, worker)
    granted = [took for ok, took in outcomes if ok]
    refused = [took for ok, took in outcomes if not ok]
    # About rate * timeout tokens can be promised within the timeout (a little
    # more refill happens while the threads line up).
    assert 45 <= len(granted) <= 60, len(granted)
    assert len(refused) == 100 - len(granted)
    # Refusals are immediate, not after sleeping out the timeout.
    assert max(refused) < timeout / 2, max(refused)


def test_denial_log_counts_every_denial_across_threads(caplog: pytest.LogCaptureFixture) -> None:
    bucket = TokenBucket(1e-6, 1)
    bucket.try_acquire()
    interceptor = RateLimitServerInterceptor(bucket, clock=lambda: 0.0)
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)

    class Details:
        method = "/test.Svc/A"

    def worker(_index: int, start: threading.Barrier) -> None:
        start.wait()
        for _ in range(500):
            interceptor.intercept_service(lambda d: handler, Details())

    caplog.set_level("WARNING", logger="pyvider_rpcplugin_sync.ratelimit")
    _run_threads(8, worker)
    assert interceptor.denied == 4000
    assert len(caplog.records) == 1  # the clock never moved: one line only
