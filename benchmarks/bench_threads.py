"""8 and 32 threads sharing one ``PluginProcess`` vs the same threads on one raw channel.

Unix socket, plaintext, 64-byte echo. Each block starts the threads behind a
barrier and times from its release to the last join (aggregate calls/s). Raw:
the same threads sharing one hand-written channel to the raw grpcio server; host
path: a raw channel to our own plugin process. Every block starts fresh processes.

    python -m benchmarks.bench_threads [--quick]
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable

from pyvider_rpcplugin_sync.examples import echo_pb2, echo_pb2_grpc

from ._common import THREADS_BUDGET, Row, Settings, calibrate, compare, interleave
from ._targets import PyviderWorker, RawServer, our_plugin, raw_channel

# Two cores: many threads reach about this much more than one thread, so blocks stay short.
CONCURRENCY_GAIN = 1.5
# Interleaved rounds (ours, raw, host path) per pair of fresh processes.
ROUNDS_PER_BLOCK = 2


def thread_block(call: Callable[[], object], threads: int, per_thread: int) -> Callable[[], float]:
    def block() -> float:
        barrier = threading.Barrier(threads + 1)

        def worker() -> None:
            barrier.wait()
            for _ in range(per_thread):
                call()

        workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
        for thread in workers:
            thread.start()
        barrier.wait()
        begin = time.perf_counter()
        for thread in workers:
            thread.join()
        return threads * per_thread / (time.perf_counter() - begin)

    return block


def run(settings: Settings, pyvider: PyviderWorker | None) -> list[Row]:
    """Per block: fresh plugin and raw server, then each variant's threads in turn."""
    request = echo_pb2.EchoRequest(payload=b"x" * 64)
    samples: dict[int, dict[str, list[float]]] = {
        t: {"ours": [], "raw": [], "same": []} for t in settings.threads
    }
    per_thread: dict[int, int] = {}
    for block in range(settings.blocks + settings.warmup_blocks):
        with our_plugin("unix", False) as plugin, RawServer("unix", False) as server:
            raw_ch = server.channel()
            assert plugin.network is not None and plugin.address is not None  # started
            same_ch = raw_channel(plugin.network, plugin.address)
            try:
                echoes = {
                    "ours": plugin.stub.Echo,
                    "raw": echo_pb2_grpc.EchoStub(raw_ch).Echo,
                    "same": echo_pb2_grpc.EchoStub(same_ch).Echo,
                }
                for echo in echoes.values():  # connect and warm up
                    for _ in range(20):
                        echo(request)
                if not per_thread:
                    raw_echo = echoes["raw"]
                    sequential = calibrate(
                        functools.partial(raw_echo, request), settings.block_seconds
                    )
                    for threads in settings.threads:
                        per_thread[threads] = max(5, int(sequential * CONCURRENCY_GAIN / threads))
                for threads in settings.threads:
                    variants = {
                        name: thread_block(
                            functools.partial(echo, request), threads, per_thread[threads]
                        )
                        for name, echo in echoes.items()
                    }
                    result = interleave(variants, ROUNDS_PER_BLOCK, warmup=0)
                    if block >= settings.warmup_blocks:
                        for name, values in result.items():
                            samples[threads][name] += values
            finally:
                raw_ch.close()
                same_ch.close()
    rows: list[Row] = []
    for threads in settings.threads:
        row = compare(
            f"threads.{threads}",
            f"{threads} threads, one plugin, 64 B unix",
            "calls/s",
            samples[threads]["ours"],
            samples[threads]["raw"],
            budget=THREADS_BUDGET,
            same=samples[threads]["same"],
            note="pyvider n/a: its client is asyncio (no threads to share it)"
            if threads == settings.threads[0]
            else "",
        )
        row.extra["calls_per_thread_per_block"] = per_thread[threads]
        rows.append(row)
    return rows


if __name__ == "__main__":
    from .__main__ import main

    sys.exit(main(["--only", "threads", *sys.argv[1:]]))
