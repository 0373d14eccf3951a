"""Server streaming: 100,000 small (16-byte) messages from ``Stream``, ours vs raw.

Unix socket, plaintext. Each repetition starts fresh processes and runs one
stream per variant (order rotating); messages/s. pyvider-rpcplugin streams through its
own plugin and client in the first ``pyvider_stream_reps`` repetitions.

    python -m benchmarks.bench_stream [--quick]
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from typing import Any

from pyvider_rpcplugin_sync.examples import echo_pb2, echo_pb2_grpc

from ._common import STREAM_BUDGET, Row, Settings, compare
from ._targets import PyviderUnavailable, PyviderWorker, RawServer, our_plugin

PAYLOAD = 16


def stream_rate(stub: Any, count: int) -> float:
    request = echo_pb2.StreamRequest(count=count, payload=b"x" * PAYLOAD)
    received = 0
    begin = time.perf_counter()
    for _ in stub.Stream(request):
        received += 1
    elapsed = time.perf_counter() - begin
    if received != count:
        raise RuntimeError(f"stream ended after {received} of {count} messages")
    return count / elapsed


def run(settings: Settings, pyvider: PyviderWorker | None) -> list[Row]:
    """Per repetition: fresh plugin and raw server, one stream from each (order rotating)."""
    count = settings.stream_count
    note = ""
    samples: dict[str, list[float]] = {"ours": [], "raw": [], "pyvider": []}
    pyvider_raw: list[float] = []
    for rep in range(settings.stream_reps):
        use_pyvider = pyvider is not None and rep < settings.pyvider_stream_reps and not note
        with our_plugin("unix", False) as plugin, RawServer("unix", False) as server:
            raw_ch = server.channel()
            try:
                stubs = {"ours": plugin.stub, "raw": echo_pb2_grpc.EchoStub(raw_ch)}
                variants: dict[str, Callable[[], float]] = {
                    name: functools.partial(stream_rate, stub, count)
                    for name, stub in stubs.items()
                }
                for stub in stubs.values():  # connect and warm up
                    stream_rate(stub, min(count, 2000))
                if use_pyvider and pyvider is not None:
                    try:
                        pyvider.call("open", transport="unix", tls=False)
                        pyvider.call("stream", count=min(count, 2000), payload=PAYLOAD)
                        variants["pyvider"] = lambda: pyvider_rate(pyvider, count)
                    except PyviderUnavailable as exc:
                        note = f"pyvider n/a: {exc}"
                names = list(variants)
                shift = rep % len(names)
                for name in names[shift:] + names[:shift]:
                    samples[name].append(variants[name]())
                if "pyvider" in variants:
                    pyvider_raw.append(samples["raw"][-1])
                    assert pyvider is not None
                    pyvider.call("close")
            finally:
                raw_ch.close()
    row = compare(
        "stream",
        f"server stream {count:,} x {PAYLOAD} B unix",
        "msgs/s",
        samples["ours"],
        samples["raw"],
        budget=STREAM_BUDGET,
        pyvider=samples["pyvider"] or None,
        pyvider_raw=pyvider_raw or None,
        note=note,
    )
    return [row]


def pyvider_rate(pyvider: PyviderWorker, count: int) -> float:
    reply = pyvider.call("stream", count=count, payload=PAYLOAD)
    if reply["received"] != count:
        raise RuntimeError(f"pyvider stream ended after {reply['received']} of {count}")
    return count / float(reply["seconds"])


if __name__ == "__main__":
    from .__main__ import main

    sys.exit(main(["--only", "stream", *sys.argv[1:]]))
