"""The cost of an enabled but never-limiting host-side bucket, per call, in one run.

One echo plugin; two channels to it: the plugin's own (no interceptor: what
``PluginProcess`` gives without ``rate_limit=``) and the same channel wrapped in the
rate-limit interceptor with a bucket that never runs dry (what ``rate_limit=`` adds).
Blocks alternate; the ratio of calls/s is the result.

    python -m benchmarks.bench_ratelimit_calls [--calls N] [--blocks N]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable

import grpc

from pyvider_rpcplugin_sync import PluginProcess, TokenBucket
from pyvider_rpcplugin_sync._ratelimit.interceptors import RateLimitClientInterceptor
from pyvider_rpcplugin_sync.examples import echo_pb2, echo_pb2_grpc

ECHO = [sys.executable, "-m", "pyvider_rpcplugin_sync.examples.echo_plugin"]


def rate(call: Callable[[], object], calls: int) -> float:
    begin = time.perf_counter()
    for _ in range(calls):
        call()
    return calls / (time.perf_counter() - begin)


def main(argv: list[str] | None = None) -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per block")
    parser.add_argument("--blocks", type=int, default=11, help="block pairs")
    args = parser.parse_args(argv)
    request = echo_pb2.EchoRequest(payload=b"x" * 64)
    with PluginProcess(ECHO, tls=False, stub=echo_pb2_grpc.EchoStub) as plugin:
        bucket = TokenBucket(rate=1e9, capacity=1e9)  # never limits
        limited_channel = grpc.intercept_channel(
            plugin.channel, RateLimitClientInterceptor(bucket, "wait")
        )
        plain, limited = plugin.stub, echo_pb2_grpc.EchoStub(limited_channel)
        for stub in (plain, limited):  # warm-up
            rate(functools.partial(stub.Echo, request, timeout=10), args.calls // 4)
        ratios: list[float] = []
        for block in range(args.blocks):
            order = [(plain, "plain"), (limited, "limited")]
            if block % 2:
                order.reverse()
            rates = {
                name: rate(functools.partial(stub.Echo, request, timeout=10), args.calls)
                for stub, name in order
            }
            ratios.append(rates["limited"] / rates["plain"])
    print(
        f"64 B unary echo, {args.blocks} x {args.calls} calls per side: "
        f"bucket enabled (never limiting) / no bucket = {statistics.median(ratios):.3f}x "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
