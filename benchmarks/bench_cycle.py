"""The full cycle spawn -> handshake -> first reply -> shutdown, ours vs raw grpcio.

ours:    ``with PluginProcess(echo plugin, tls=...) as p: p.stub.Echo(...)``.
minimal: the baseline of the budget, the plugin and host a user would write with raw
         grpcio (``_minimal_plugin.py``: echo and health services, the handshake line,
         exit when stdin closes; the host reads the line, connects, one Echo
         (wait_for_ready), closes the channel and the plugin's stdin, reaps it). Its
         mTLS cycle makes the same P-256 certificates as AutoMTLS, both sides.
full:    a fuller raw baseline (``_raw_server.py``: the library's worker count and
         server options, SIGTERM and a graceful stop), no budget.
pyvider-rpcplugin: ``async with plugin_client(...)`` around one Echo, in its worker.
supervisor: ours alone (its supervisor starts and ends with the plugin) against ours
         while another plugin keeps a supervisor running: the supervisor's share of a
         start, no budget.
``--quick`` measures ours and minimal only, in more rounds.
Unix socket; repetitions interleaved; milliseconds (lower is better).

    python -m benchmarks.bench_cycle [--quick]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from pyvider_rpcplugin_sync.examples import echo_pb2, echo_pb2_grpc

from ._common import CYCLE_BUDGET, Row, Settings, compare, interleave
from ._targets import PyviderUnavailable, PyviderWorker, RawServer, minimal_cycle, our_plugin

REQUEST = echo_pb2.EchoRequest(payload=b"x" * 64)
PHASES = ("start", "first_reply", "shutdown")
Phases = dict[str, list[float]]


def ours_cycle(tls: bool, phases: Phases) -> float:
    begin = time.perf_counter()
    with our_plugin("unix", tls) as plugin:
        started = time.perf_counter()
        plugin.stub.Echo(REQUEST, timeout=30)
        replied = time.perf_counter()
    ended = time.perf_counter()
    record(phases, begin, started, replied, ended)
    return (ended - begin) * 1000


def minimal_raw_cycle(tls: bool, phases: Phases) -> float:
    marks: list[float] = []
    begin = time.perf_counter()
    minimal_cycle(tls, REQUEST, marks)
    ended = time.perf_counter()
    record(phases, begin, marks[0], marks[1], ended)
    return (ended - begin) * 1000


def full_raw_cycle(tls: bool, phases: Phases) -> float:
    begin = time.perf_counter()
    with RawServer("unix", tls) as server:
        started = time.perf_counter()
        channel = server.channel()
        echo_pb2_grpc.EchoStub(channel).Echo(REQUEST, timeout=30, wait_for_ready=True)
        replied = time.perf_counter()
        channel.close()
    ended = time.perf_counter()
    record(phases, begin, started, replied, ended)
    return (ended - begin) * 1000


def record(phases: Phases, begin: float, started: float, replied: float, ended: float) -> None:
    for name, value in zip(
        PHASES, (started - begin, replied - started, ended - replied), strict=True
    ):
        phases.setdefault(name, []).append(value * 1000)


def phase_note(phases: dict[str, Phases], warm: int) -> tuple[dict[str, dict[str, float]], str]:
    """Phase medians (ms) over the timed repetitions (the warm-up rounds come first)."""
    medians = {
        side: {name: round(statistics.median(values[warm:]), 1) for name, values in p.items()}
        for side, p in phases.items()
    }
    text = f"{'/'.join(PHASES)} ms: " + ", ".join(
        f"{side} " + "/".join(f"{medians[side][n]:.0f}" for n in PHASES) for side in medians
    )
    return medians, text


def cycle_rows(settings: Settings, pyvider: PyviderWorker | None, tls: bool) -> list[Row]:
    phases: dict[str, Phases] = {"ours": {}, "minimal": {}}
    variants: dict[str, Callable[[], float]] = {
        "ours": lambda: ours_cycle(tls, phases["ours"]),
        "minimal": lambda: minimal_raw_cycle(tls, phases["minimal"]),
    }
    if not settings.quick:  # --quick spends its time on the budget row's two variants
        phases["full"] = {}
        variants["full"] = lambda: full_raw_cycle(tls, phases["full"])
    note = ""
    if pyvider is not None:

        def pyvider_cycle() -> float:
            return float(pyvider.call("cycle", transport="unix", tls=tls)["seconds"]) * 1000

        try:
            pyvider_cycle()  # also the warm-up
            variants["pyvider"] = pyvider_cycle
        except PyviderUnavailable as exc:
            note = f"pyvider n/a: {exc}"
    samples = interleave(variants, settings.cycle_reps, settings.warmup_blocks)
    medians, split = phase_note(phases, settings.warmup_blocks)
    mode = "mtls" if tls else "plain"
    label = "mTLS" if tls else "plain"
    row = compare(
        f"cycle.{mode}",
        f"cycle spawn->reply->shutdown {label} vs minimal grpcio",
        "ms",
        samples["ours"],
        samples["minimal"],
        budget=CYCLE_BUDGET,
        pyvider=samples.get("pyvider"),
        note="; ".join(filter(None, [split, note])),
    )
    row.extra["phases_ms"] = medians
    if "full" not in samples:
        return [row]
    full = compare(
        f"cycle.{mode}_full",
        f"cycle {label} vs the fuller raw server",
        "ms",
        samples["ours"],
        samples["full"],
        note="raw: _raw_server.py (the library's pool and options, SIGTERM, graceful stop)",
    )
    return [row, full]


def supervisor_row(settings: Settings) -> Row:
    """Ours alone (each start spawns a supervisor, each close ends it) against ours
    while a long-lived plugin, started and closed outside the timing, keeps the host's
    supervisor running."""

    def beside() -> float:
        with our_plugin("unix", False):
            return ours_cycle(False, {})

    samples = interleave(
        {"alone": lambda: ours_cycle(False, {}), "beside": beside},
        settings.cycle_reps,
        settings.warmup_blocks,
    )
    return compare(
        "cycle.supervisor",
        "cycle plain: own supervisor vs one running",
        "ms",
        samples["alone"],
        samples["beside"],
        note="the supervisor's share of a start and close (its spawn, its exit and reaping)",
    )


def run(settings: Settings, pyvider: PyviderWorker | None) -> list[Row]:
    rows: list[Row] = []
    for tls in (False, True):
        rows += cycle_rows(settings, pyvider, tls)
    if not settings.quick:
        rows.append(supervisor_row(settings))
    return rows


if __name__ == "__main__":
    from .__main__ import main

    sys.exit(main(["--only", "cycle", *sys.argv[1:]]))
