"""Sequential unary echo, 64 B and 1 MiB, unix and TCP, plaintext and mTLS.

Per (transport, TLS): our plugin through ``plugin.stub``; the raw grpcio server
(``_raw_server.py``: the same servicer on a hand-written server, same options)
through a hand-written channel; pyvider-rpcplugin's plugin through its own
client. They alternate in chunks of about 20 ms (order rotating), and a round's
ratio compares chunks that ran back to back. For plaintext a second alternation
pits ``plugin.stub`` against a raw channel to *our* plugin process ("host
path"): the host-side call path alone.

Every block starts a fresh plugin and raw server: a process's speed depends a
little on how it happened to start (memory layout, how many pool threads it
grew), a bias that interleaving cannot remove but fresh processes average out.
(pyvider's plugin stays up for all blocks of a setup.)

    python -m benchmarks.bench_unary [--quick]
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

from pyvider_rpcplugin_sync._constants import Transport
from pyvider_rpcplugin_sync.examples import echo_pb2, echo_pb2_grpc

from ._common import (
    UNARY_BUDGET,
    Alternation,
    Row,
    Settings,
    Timed,
    alternate,
    alternation_row,
    calibrate,
    merge,
    timed_calls,
)
from ._targets import PyviderUnavailable, PyviderWorker, RawServer, our_plugin, raw_channel


def size_name(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size} B"


def setup_name(transport: str, tls: bool) -> str:
    return f"{transport} {'mTLS' if tls else 'plain'}"


def run(settings: Settings, pyvider: PyviderWorker | None) -> list[Row]:
    rows: list[Row] = []
    for transport, tls in settings.setups:
        rows += measure_setup(transport, tls, settings, pyvider)
    return rows


@contextmanager
def targets(transport: Transport, tls: bool) -> Generator[tuple[dict[str, Any], Any], None, None]:
    """Fresh processes: (stubs "ours" and "raw", a raw stub to our plugin or None)."""
    with our_plugin(transport, tls) as plugin, RawServer(transport, tls) as server:
        raw_ch = server.channel()
        # A raw channel to our own plugin needs the host's TLS identity, which the
        # library keeps to itself: plaintext only.
        assert plugin.network is not None and plugin.address is not None  # started
        same_ch = None if tls else raw_channel(plugin.network, plugin.address)
        try:
            stubs = {"ours": plugin.stub, "raw": echo_pb2_grpc.EchoStub(raw_ch)}
            yield stubs, echo_pb2_grpc.EchoStub(same_ch) if same_ch else None
        finally:
            raw_ch.close()
            if same_ch is not None:
                same_ch.close()


def measure_setup(
    transport: Transport, tls: bool, settings: Settings, pyvider: PyviderWorker | None
) -> list[Row]:
    note = ""
    if pyvider is not None:
        try:  # pyvider's plugin stays up for the whole setup (it is not what we budget)
            pyvider.call("open", transport=transport, tls=tls)
        except PyviderUnavailable as exc:
            note, pyvider = f"pyvider n/a: {exc}", None
    try:
        return measure_blocks(transport, tls, settings, pyvider, note)
    finally:
        if pyvider is not None:
            pyvider.call("close")


def measure_blocks(
    transport: Transport, tls: bool, settings: Settings, pyvider: PyviderWorker | None, note: str
) -> list[Row]:
    parts: dict[int, list[Alternation]] = {size: [] for size in settings.payloads}
    host_parts: dict[int, list[Alternation]] = {size: [] for size in settings.payloads}
    shapes: dict[int, dict[str, int]] = {}
    for _ in range(settings.blocks):
        with targets(transport, tls) as (stubs, same):
            for size in settings.payloads:
                request = echo_pb2.EchoRequest(payload=b"x" * size)
                if size not in shapes:
                    raw_echo = stubs["raw"].Echo
                    chunk = calibrate(functools.partial(raw_echo, request), settings.chunk_seconds)
                    rounds = max(3, round(settings.block_seconds / settings.chunk_seconds))
                    shapes[size] = {"chunk": chunk, "rounds": rounds, "blocks": 1}
                alt, host = measure_block(stubs, same, pyvider, request, shapes[size])
                parts[size].append(alt)
                if host is not None:
                    host_parts[size].append(host)
    rows: list[Row] = []
    for size in settings.payloads:
        key = f"unary.{size}.{transport}.{'mtls' if tls else 'plain'}"
        title = f"unary {size_name(size)} {setup_name(transport, tls)}"
        host = merge(host_parts[size]) if host_parts[size] else None
        row = alternation_row(
            key, title, merge(parts[size]), budget=UNARY_BUDGET, host_path=host, note=note
        )
        row.extra.update(shapes[size])
        rows.append(row)
    return rows


def measure_block(
    stubs: dict[str, Any],
    same: Any,
    pyvider: PyviderWorker | None,
    request: echo_pb2.EchoRequest,
    shape: dict[str, int],
) -> tuple[Alternation, Alternation | None]:
    variants: dict[str, Timed] = {
        name: timed_calls(functools.partial(stub.Echo, request)) for name, stub in stubs.items()
    }
    if pyvider is not None:
        size = len(request.payload)

        def pyvider_calls(n: int) -> float:
            return float(pyvider.call("unary", payload=size, calls=n)["seconds"])

        variants["pyvider"] = pyvider_calls
    alt = alternate(variants, "raw", **shape)
    host_path = None
    if same is not None:
        pair = {"ours": variants["ours"], "same": timed_calls(lambda: same.Echo(request))}
        host_path = alternate(pair, "same", **shape)
    return alt, host_path


if __name__ == "__main__":
    from .__main__ import main

    sys.exit(main(["--only", "unary", *sys.argv[1:]]))
