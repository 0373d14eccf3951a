"""Rows from the benchmarks other modules own: the TLS bridge and the token bucket.

- TLS bridge: runs ``python -m benchmarks.bench_tls`` (native grpcio mTLS vs the
  ``ssl`` bridge with P-521 peers) and reads its 64-byte and 1 MiB tables and budget
  line. If it is missing, fails, or prints something else, the rows say n/a and why.
- Token bucket: ``TokenBucket.try_acquire`` uncontended, timed as
  ``bench_ratelimit.py`` does (several timed loops, median), granted and refused.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from ._common import (
    BUCKET_BUDGET,
    TLS_BRIDGE_BIG_BUDGET,
    TLS_BRIDGE_BUDGET,
    Budget,
    Row,
    Settings,
    Stat,
    na_row,
)
from ._targets import HERE, ROOT, PyviderWorker, clean_environ

TLS_KEY, TLS_TITLE = "tls_bridge", "TLS bridge (P-521) vs grpcio mTLS, 64 B"
# bench_tls's table: "  <variant>  <calls/s>  <min>-<max>  <ratio>x  <median> (<min>-<max>)"
_TLS_LINE = re.compile(
    r"^\s+(?P<name>[\w-]+)\s+(?P<median>[\d,]+)\s+(?P<low>[\d,]+)-(?P<high>[\d,]+)\s+"
    r"(?P<ratio>[\d.]+)x\s+(?P<rmed>[\d.]+) \((?P<rlow>[\d.]+)-(?P<rhigh>[\d.]+)\)"
)
_TLS_BUDGET_LINE = re.compile(r"budget: bridged .*?: (?P<ratio>[\d.]+)x")
TLS_TIMEOUT = 300


def _number(text: str) -> float:
    return float(text.replace(",", ""))


# (key, title, variant, size section, budget): the two budget rows measure two bridges
# (our host and our plugin, both P-521); a deployment has one, with a Go peer on the other
# side, which the one-bridge rows measure (no budget).
TLS_ROWS: tuple[tuple[str, str, str, str, Budget | None], ...] = (
    (TLS_KEY, TLS_TITLE, "bridged", "64", TLS_BRIDGE_BUDGET),
    (
        "tls_bridge_1mib",
        "TLS bridge (P-521) vs grpcio mTLS, 1 MiB",
        "bridged",
        "1M",
        TLS_BRIDGE_BIG_BUDGET,
    ),
    ("tls_plugin_bridge", "one bridge, plugin side, 64 B", "srv-bridge", "64", None),
    ("tls_plugin_bridge_1mib", "one bridge, plugin side, 1 MiB", "srv-bridge", "1M", None),
    ("tls_host_bridge", "one bridge, host side, 64 B", "cli-bridge", "64", None),
    ("tls_host_bridge_1mib", "one bridge, host side, 1 MiB", "cli-bridge", "1M", None),
)
_TLS_NOTES = {
    "bridged": "from benchmarks/bench_tls.py: ours = host and plugin bridges (P-521 both "
    "sides), raw = native grpcio mTLS (P-256)",
    "srv-bridge": "grpcio mTLS client (P-384, as a Go host) -> BridgeServer -> grpcio",
    "cli-bridge": "grpcio -> BridgeClient -> grpcio mTLS server (P-384, as a Go plugin)",
}


def _tls_sections(text: str) -> dict[str, dict[str, dict[str, float]]]:
    """variant -> its numbers, per payload section ("64" and "1M") of bench_tls's output."""
    sections: dict[str, dict[str, dict[str, float]]] = {"64": {}, "1M": {}}
    current = sections["64"]
    for line in text.splitlines():
        if line.strip().startswith("1 MiB"):
            current = sections["1M"]
            continue
        match = _TLS_LINE.match(line)
        if match:
            current[match["name"]] = {
                k: _number(v) for k, v in match.groupdict().items() if k != "name"
            }
    return sections


def parse_tls_rows(text: str) -> list[Row]:
    """Every bridge row of bench_tls's output (n/a rows where it cannot be read)."""
    sections = _tls_sections(text)
    budget_line = _TLS_BUDGET_LINE.search(text)
    rows: list[Row] = []
    for key, title, variant, size, budget in TLS_ROWS:
        found, native = sections[size].get(variant), sections[size].get("native")
        if found is None or native is None:
            if budget is not None:
                rows.append(
                    na_row(
                        key, title, "calls/s", f"bench_tls printed no {variant}/native rows", budget
                    )
                )
            continue
        row = Row(key, title, "calls/s", budget=budget)
        row.ours = Stat(found["median"], found["low"], found["high"], 0)
        row.raw = Stat(native["median"], native["low"], native["high"], 0)
        row.score = Stat(found["rmed"], found["rlow"], found["rhigh"], 0)
        if key == TLS_KEY and budget_line:
            row.extra["bench_tls_ratio_of_medians"] = float(budget_line["ratio"])
        row.note = _TLS_NOTES[variant]
        rows.append(row)
    return rows


def parse_tls_output(text: str) -> Row:
    """The 64-byte two-bridge row, the one with the main budget."""
    return parse_tls_rows(text)[0]


def run_tls_bridge(settings: Settings, pyvider: PyviderWorker | None = None) -> list[Row]:
    if not (HERE / "bench_tls.py").exists():
        return [
            na_row(
                TLS_KEY,
                TLS_TITLE,
                "calls/s",
                "benchmarks/bench_tls.py is missing",
                TLS_BRIDGE_BUDGET,
            )
        ]
    argv = [sys.executable, "-m", "benchmarks.bench_tls", *settings.tls_bridge_args]
    try:
        done = subprocess.run(
            argv,
            check=False,
            env=clean_environ(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TLS_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return [
            na_row(
                TLS_KEY,
                TLS_TITLE,
                "calls/s",
                f"bench_tls took over {TLS_TIMEOUT} s",
                TLS_BRIDGE_BUDGET,
            )
        ]
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return [
            na_row(
                TLS_KEY,
                TLS_TITLE,
                "calls/s",
                f"bench_tls exited {done.returncode}: {tail}",
                TLS_BRIDGE_BUDGET,
            )
        ]
    rows = parse_tls_rows(done.stdout)
    rows[0].extra["bench_tls_output"] = done.stdout
    return rows


def ns_samples(func: Callable[[], object], calls: int, runs: int = 7) -> list[float]:
    """CPU ns of this thread per call of ``func``, ``runs`` timed loops (loop overhead
    included). Thread CPU time, not wall time: on a shared machine a wall clock
    counts the neighbours' time slices as ours."""
    samples: list[float] = []
    for _ in range(runs):
        began = time.thread_time_ns()
        for _ in range(calls):
            func()
        samples.append((time.thread_time_ns() - began) / calls)
    return samples


def run_bucket(settings: Settings, pyvider: PyviderWorker | None = None) -> list[Row]:
    from pyvider_rpcplugin_sync import TokenBucket

    lock = threading.Lock()

    def bare_lock() -> None:
        with lock:
            pass

    granted = TokenBucket(1e12, 1e12)  # always has tokens
    refused = TokenBucket(1e-9, 1)  # never has tokens (after the first)
    refused.try_acquire()
    calls = settings.bucket_calls
    reference = ns_samples(bare_lock, calls)
    rows: list[Row] = []
    for key, title, bucket in (
        ("bucket.granted", "TokenBucket.try_acquire granted", granted),
        ("bucket.refused", "TokenBucket.try_acquire refused", refused),
    ):
        samples = ns_samples(bucket.try_acquire, calls)
        row = Row(key, title, "ns", ours=Stat.of(samples), raw=Stat.of(reference))
        row.score, row.score_kind, row.budget = Stat.of(samples), "value", BUCKET_BUDGET
        if key.endswith("granted"):
            row.note = "thread CPU ns per call; raw column: `with threading.Lock(): pass`"
        rows.append(row)
    return rows
