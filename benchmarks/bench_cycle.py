"""The full cycle spawn -> handshake -> first reply -> shutdown, ours vs raw grpcio.

ours: ``with PluginProcess(echo plugin, tls=...) as p: p.stub.Echo(...)``.
raw:  the same steps by hand: spawn ``_raw_server.py`` (for mTLS both sides make
      P-256 certificates, as ours do), read its address line, connect a channel,
      one Echo (wait_for_ready), close the channel, SIGTERM, wait.
pyvider-rpcplugin: ``async with plugin_client(...)`` around one Echo, in its worker.
Unix socket; repetitions interleaved; milliseconds (lower is better).

    python -m benchmarks.bench_cycle [--quick]
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from collections.abc import Callable

from pyvider_rpcplugin_sync.examples import echo_pb2, echo_pb2_grpc

from ._common import CYCLE_BUDGET, Row, Settings, compare, interleave
from ._targets import PyviderUnavailable, PyviderWorker, RawServer, our_plugin

REQUEST = echo_pb2.EchoRequest(payload=b"x" * 64)
PHASES = ("start", "first_reply", "shutdown")


def ours_cycle(tls: bool, phases: dict[str, list[float]]) -> float:
    begin = time.perf_counter()
    with our_plugin("unix", tls) as plugin:
        started = time.perf_counter()
        plugin.stub.Echo(REQUEST, timeout=30)
        replied = time.perf_counter()
    ended = time.perf_counter()
    record(phases, begin, started, replied, ended)
    return (ended - begin) * 1000


def raw_cycle(tls: bool, phases: dict[str, list[float]]) -> float:
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


def record(
    phases: dict[str, list[float]], begin: float, started: float, replied: float, ended: float
) -> None:
    for name, value in zip(
        PHASES, (started - begin, replied - started, ended - replied), strict=True
    ):
        phases.setdefault(name, []).append(value * 1000)


def run(settings: Settings, pyvider: PyviderWorker | None) -> list[Row]:
    rows = []
    for tls in (False, True):
        ours_phases: dict[str, list[float]] = {}
        raw_phases: dict[str, list[float]] = {}
        variants: dict[str, Callable[[], float]] = {
            "ours": functools.partial(ours_cycle, tls, ours_phases),
            "raw": functools.partial(raw_cycle, tls, raw_phases),
        }
        note = ""
        if pyvider is not None:

            def pyvider_cycle(tls: bool = tls) -> float:
                return float(pyvider.call("cycle", transport="unix", tls=tls)["seconds"]) * 1000

            try:
                pyvider_cycle()  # also the warm-up
                variants["pyvider"] = pyvider_cycle
            except PyviderUnavailable as exc:
                note = f"pyvider n/a: {exc}"
        samples = interleave(variants, settings.cycle_reps, settings.warmup_blocks)
        row = compare(
            f"cycle.{'mtls' if tls else 'plain'}",
            f"cycle spawn->reply->shutdown {'mTLS' if tls else 'plain'}",
            "ms",
            samples["ours"],
            samples["raw"],
            budget=CYCLE_BUDGET,
            pyvider=samples.get("pyvider"),
            note=note,
        )
        # Phase medians (ms) over the timed repetitions (the warm-up is the first entry).
        warm = settings.warmup_blocks
        phases = {
            side: {name: round(statistics.median(values[warm:]), 1) for name, values in p.items()}
            for side, p in (("ours", ours_phases), ("raw", raw_phases))
        }
        row.extra["phases_ms"] = phases
        split = "/".join(PHASES)
        row.note = "; ".join(
            filter(
                None,
                [
                    f"{split} ms: ours "
                    + "/".join(f"{phases['ours'][n]:.0f}" for n in PHASES)
                    + ", raw "
                    + "/".join(f"{phases['raw'][n]:.0f}" for n in PHASES),
                    row.note,
                ],
            )
        )
        rows.append(row)
    return rows


if __name__ == "__main__":
    from .__main__ import main

    sys.exit(main(["--only", "cycle", *sys.argv[1:]]))
