"""TokenBucket.try_acquire cost: uncontended (budget <= 2 us) and under 8 threads.

Run: python benchmarks/bench_ratelimit.py
Exit status 1 when the uncontended budget is missed.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

try:
    from pyvider_rpcplugin_sync._ratelimit.bucket import TokenBucket
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from pyvider_rpcplugin_sync._ratelimit.bucket import TokenBucket

BUDGET_NS = 2000.0
CALLS = 200_000
RUNS = 7
THREADS = 8
CALLS_PER_THREAD = 50_000
THREAD_RUNS = 3


def ns_per_call(func: Callable[[], object], calls: int = CALLS) -> float:
    """Median ns per call over RUNS timed loops (loop overhead included)."""
    samples: list[float] = []
    for _ in range(RUNS):
        began = time.perf_counter_ns()
        for _ in range(calls):
            func()
        samples.append((time.perf_counter_ns() - began) / calls)
    return statistics.median(samples)


def contended(bucket: TokenBucket) -> tuple[float, float]:
    """(aggregate ops/s, wall ns per op) with THREADS threads hammering one bucket."""
    rates: list[float] = []
    for _ in range(THREAD_RUNS):
        barrier = threading.Barrier(THREADS + 1)

        def worker(barrier: threading.Barrier = barrier) -> None:
            acquire = bucket.try_acquire
            barrier.wait()
            for _ in range(CALLS_PER_THREAD):
                acquire()

        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        barrier.wait()
        began = time.perf_counter_ns()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter_ns() - began
        rates.append(THREADS * CALLS_PER_THREAD / (elapsed / 1e9))
    ops = statistics.median(rates)
    return ops, 1e9 / ops


def main() -> int:
    print(f"python {sys.version.split()[0]}, switch interval {sys.getswitchinterval()} s")
    lock = threading.Lock()

    def bare_lock() -> None:
        with lock:
            pass

    baseline = ns_per_call(bare_lock)
    granted = TokenBucket(1e12, 1e12)  # always has tokens: the grant path
    refused = TokenBucket(1e-9, 1)  # never has tokens: the refusal path
    refused.try_acquire()
    grant_ns = ns_per_call(granted.try_acquire)
    refuse_ns = ns_per_call(refused.try_acquire)
    assert granted.try_acquire() and not refused.try_acquire()
    print(f"uncontended, {CALLS} calls x {RUNS} runs (median):")
    print(f"  with threading.Lock: pass   {baseline:8.0f} ns/op  (reference)")
    print(f"  try_acquire, granted        {grant_ns:8.0f} ns/op")
    print(f"  try_acquire, refused        {refuse_ns:8.0f} ns/op")
    ops, per_op = contended(TokenBucket(1e12, 1e12))
    print(f"{THREADS} contending threads, {CALLS_PER_THREAD} calls each x {THREAD_RUNS} runs:")
    print(f"  aggregate {ops:,.0f} ops/s, {per_op:.0f} ns/op wall")
    worst = max(grant_ns, refuse_ns)
    ok = worst <= BUDGET_NS
    print(
        f"budget: try_acquire uncontended <= {BUDGET_NS:.0f} ns: {worst:.0f} ns "
        f"({worst / BUDGET_NS:.2f}x of budget) -> {'OK' if ok else 'OVER BUDGET'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
