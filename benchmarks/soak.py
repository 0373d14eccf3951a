"""Soak: a million calls from 32 threads through one AutoMTLS plugin, killed now and then.

    python -m benchmarks.soak [--calls 1000000] [--threads 32] [--kill-every 100000]
                              [--out benchmarks/results]

One ``SharedPlugin`` (the echo plugin, AutoMTLS) serves every thread. Each time
the call count passes a multiple of ``--kill-every`` the plugin is SIGKILLed;
the SharedPlugin restarts it on the next call. Expected errors are the calls cut
by a kill and those refused while the SharedPlugin restarts it (``PluginClosed``
within KILL_WINDOW seconds of a kill); anything else is an error. Once a second
the host's and the plugin's RSS are sampled.

Writes ``<out>/soak.json`` (the settings, counts, verdicts and every sample) and,
with matplotlib (the ``bench`` extra), ``<out>/soak.png`` (RSS and calls/s over
time). Exit status 1 when there was an unexpected error, RSS was not flat or
something was left behind (child processes, threads, fds).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyvider_rpcplugin_sync import PluginClosed, PluginProcess, SharedPlugin
from pyvider_rpcplugin_sync.examples import echo_pb2, echo_pb2_grpc

from ._report import pyplot
from ._targets import vm_rss_kib

RESULTS = Path(__file__).resolve().parent / "results"
ECHO = [sys.executable, "-m", "pyvider_rpcplugin_sync.examples.echo_plugin"]
# "Flat": after the first kill interval (warm-up), RSS may not grow by more than this.
FLAT_LIMIT = 0.10
# PluginClosed this soon after a kill is expected (cut calls, a restart in progress).
KILL_WINDOW = 5.0


@dataclass
class Soak:
    calls: int
    threads: int
    kill_every: int
    done: int = 0
    kills: int = 0
    expected_errors: int = 0
    last_kill: float = float("-inf")
    unexpected: list[str] = field(default_factory=list[str])
    samples: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    segment_plugin_kib: list[int] = field(default_factory=list[int])


def run(soak: Soak) -> None:
    shared = SharedPlugin(ECHO, stub=echo_pb2_grpc.EchoStub, tls=True)
    counter = itertools.count(1)
    lock = threading.Lock()
    stop = threading.Event()
    request = echo_pb2.EchoRequest(payload=b"x" * 64)

    def worker() -> None:
        while (number := next(counter)) <= soak.calls:
            try:
                shared.stub.Echo(request, timeout=30)
            except PluginClosed as exc:
                with lock:
                    if time.monotonic() - soak.last_kill < KILL_WINDOW:
                        soak.expected_errors += 1
                    else:
                        soak.unexpected.append(f"call {number}: PluginClosed: {exc}"[:300])
            except Exception as exc:
                with lock:
                    soak.unexpected.append(f"call {number}: {type(exc).__name__}: {exc}"[:300])
            if number % soak.kill_every == 0 and number < soak.calls:
                kill(shared, soak)
        with lock:
            soak.done += 1

    sampler = threading.Thread(target=sample, args=(shared, soak, counter, stop), daemon=True)
    began = time.monotonic()
    shared.ping()
    sampler.start()
    threads = [threading.Thread(target=worker, name=f"soak-{i}") for i in range(soak.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    sampler.join()
    soak.samples.append(snapshot(shared, began, soak.calls))
    shared.close()


def kill(shared: SharedPlugin[Any], soak: Soak) -> None:
    pid = shared.pid
    if pid is None:
        return
    soak.segment_plugin_kib.append(vm_rss_kib(pid) or 0)
    soak.last_kill = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    soak.kills += 1


def sample(shared: SharedPlugin[Any], soak: Soak, counter: Any, stop: threading.Event) -> None:
    began = time.monotonic()
    while not stop.wait(1.0):
        # itertools.count's repr is the next number: calls started so far.
        started = int(repr(counter)[6:-1]) - 1
        soak.samples.append(snapshot(shared, began, min(started, soak.calls)))


def snapshot(shared: SharedPlugin[Any], began: float, calls: int) -> dict[str, Any]:
    pid = shared.pid
    return {
        "t": round(time.monotonic() - began, 2),
        "calls": calls,
        "host_kib": vm_rss_kib(),
        "plugin_kib": vm_rss_kib(pid) if pid else None,
    }


def verdicts(soak: Soak, leftovers: dict[str, Any]) -> dict[str, Any]:
    """Flat RSS (after the warm-up interval), expected errors only, nothing left behind."""
    warm = [s for s in soak.samples if s["calls"] >= soak.kill_every and s["host_kib"]]
    host = [s["host_kib"] for s in warm] or [0]
    plugin = soak.segment_plugin_kib[1:] or soak.segment_plugin_kib or [0]
    host_growth = (host[-1] - host[0]) / host[0] if host[0] else 0.0
    plugin_spread = (max(plugin) - min(plugin)) / min(plugin) if min(plugin) else 0.0
    return {
        "host_rss_growth_after_warmup": round(host_growth, 4),
        "plugin_rss_spread_at_kills": round(plugin_spread, 4),
        "rss_flat": host_growth <= FLAT_LIMIT and plugin_spread <= FLAT_LIMIT,
        "unexpected_errors": len(soak.unexpected),
        "left_behind": leftovers,
        "ok": (
            not soak.unexpected
            and host_growth <= FLAT_LIMIT
            and plugin_spread <= FLAT_LIMIT
            and not any(leftovers.values())
        ),
    }


def leftovers(threads_before: set[threading.Thread], fds_before: set[str]) -> dict[str, Any]:
    children = [
        entry
        for entry in os.listdir("/proc")
        if entry.isdigit() and _ppid(entry) == os.getpid() and not _is_supervisor(entry)
    ]
    for thread in threading.enumerate():  # grpc's short-lived helpers finish on their own
        if thread not in threads_before and thread is not threading.current_thread():
            thread.join(timeout=5)
    threads = [t.name for t in threading.enumerate() if t not in threads_before]
    fds = sorted(_fds() - fds_before)
    return {"child_processes": children, "threads": threads, "fds": fds}


def _fds() -> set[str]:
    """Open fds as "number -> target", without grpc's pollers (they come and go)."""
    found: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if not target.startswith("anon_inode:"):
            found.add(f"{fd} -> {target}")
    return found


def _ppid(pid: str) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return -1
    return int(stat[stat.rindex(b")") + 2 :].split()[1])


def _is_supervisor(pid: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        return b"pyvider_rpcplugin_sync/_host/supervisor_main.py" in cmdline
    except OSError:
        return False


def plot(soak: Soak, path: Path) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    t = [s["t"] for s in soak.samples]
    fig, (rss, rate) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for key, label in (("host_kib", "host"), ("plugin_kib", "plugin")):
        # No value while the plugin restarts: a gap, not a drop to zero.
        values = [s[key] / 1024 if s[key] else float("nan") for s in soak.samples]
        rss.plot(t, values, label=label)
    rss.set_ylim(bottom=0)
    rss.set_ylabel("RSS (MiB)")
    rss.legend()
    calls = [s["calls"] for s in soak.samples]
    rates = [0.0] + [
        (c1 - c0) / max(t1 - t0, 1e-9)
        for (t0, c0), (t1, c1) in itertools.pairwise(zip(t, calls, strict=True))
    ]
    rate.plot(t, rates)
    rate.set_ylabel("calls/s")
    rate.set_xlabel(f"seconds ({soak.calls:,} calls, {soak.threads} threads, AutoMTLS)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--kill-every", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    soak = Soak(args.calls, args.threads, args.kill_every)
    with PluginProcess(ECHO, tls=True):  # warm-up: grpc's globals, the supervisor's pipe
        pass
    threads_before, fds_before = set(threading.enumerate()), _fds()
    began = time.monotonic()
    run(soak)
    elapsed = time.monotonic() - began
    result: dict[str, Any] = {
        "command": "python -m benchmarks.soak " + " ".join(argv or sys.argv[1:]),
        "machine": f"{os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}",
        "elapsed_s": round(elapsed, 1),
        "calls_per_s": round(soak.calls / elapsed),
        **asdict(soak),
        "verdicts": verdicts(soak, leftovers(threads_before, fds_before)),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
    png = plot(soak, args.out / "soak.png")
    summary = {k: result[k] for k in ("elapsed_s", "calls_per_s", "kills", "expected_errors")}
    print(json.dumps({**summary, **result["verdicts"], "png": png}, indent=1))
    return 0 if result["verdicts"]["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
