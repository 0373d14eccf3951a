"""Sequential unary echo: ``plugin.stub`` against raw grpcio on the same socket, one run.

Both sides call the same plugin process: the library through ``plugin.stub``,
raw grpcio through a channel made by hand to the same address with the same
options. Blocks alternate (A, B, A, B, ...) so machine drift hits both alike;
the ratio of medians is the result.

    python -m benchmarks.bench_unary [--calls N] [--blocks N] [--payload BYTES]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import grpc

from pyvider_rpcplugin_sync import PluginProcess
from pyvider_rpcplugin_sync._constants import UNLIMITED_MESSAGE_OPTIONS
from pyvider_rpcplugin_sync.examples import echo_pb2, echo_pb2_grpc

ECHO = [sys.executable, "-m", "pyvider_rpcplugin_sync.examples.echo_plugin"]


def calls_per_second(call: Callable[[], object], calls: int) -> float:
    begin = time.perf_counter()
    for _ in range(calls):
        call()
    return calls / (time.perf_counter() - begin)


def measure(transport: str, calls: int, blocks: int, payload_size: int) -> dict[str, float]:
    request = echo_pb2.EchoRequest(payload=b"x" * payload_size)
    with PluginProcess(ECHO, tls=False, transport=transport, stub=echo_pb2_grpc.EchoStub) as plugin:
        target = f"unix:{plugin.address}" if plugin.network == "unix" else plugin.address
        with grpc.insecure_channel(target, options=UNLIMITED_MESSAGE_OPTIONS) as raw_channel:
            raw = echo_pb2_grpc.EchoStub(raw_channel)
            ours = plugin.stub
            for stub in (raw, ours):  # warm-up: connections, caches
                calls_per_second(lambda s=stub: s.Echo(request), calls // 4 or 1)
            lib_rates, raw_rates = [], []
            for _ in range(blocks):
                lib_rates.append(calls_per_second(lambda: ours.Echo(request), calls))
                raw_rates.append(calls_per_second(lambda: raw.Echo(request), calls))
    ratios = [a / b for a, b in zip(lib_rates, raw_rates, strict=True)]
    return {
        "library_calls_per_s": statistics.median(lib_rates),
        "raw_calls_per_s": statistics.median(raw_rates),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per block")
    parser.add_argument("--blocks", type=int, default=7, help="A/B block pairs")
    parser.add_argument("--payload", type=int, default=64, help="payload bytes")
    args = parser.parse_args(argv)
    print(f"sequential unary echo, {args.payload} B, {args.blocks} x {args.calls} calls per side")
    print(f"{'transport':<10} {'plugin.stub/s':>14} {'raw grpcio/s':>14} {'ratio':>7}  min-max")
    for transport in ("unix", "tcp"):
        r = measure(transport, args.calls, args.blocks, args.payload)
        print(
            f"{transport:<10} {r['library_calls_per_s']:>14,.0f} {r['raw_calls_per_s']:>14,.0f} "
            f"{r['ratio']:>7.3f}  {r['ratio_min']:.3f}-{r['ratio_max']:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
