"""The multiplexed broker (``multiplex=True``) against direct connections, in one run.

Two sessions of the same plugin (``_broker_plugin.py``), unix, plaintext and mTLS: one
with direct connections (a socket per gRPC connection), one multiplexed (every gRPC
connection a yamux stream over one socket, relayed to private sockets on both
sides). All 64 B unary echoes, alternating in ~20 ms chunks:

- ``main``: ``plugin.stub.Echo`` on the main channel; multiplexed against direct;
- ``callback``: host -> plugin -> host, the plugin calling the host's brokered server
  over a channel it dialed once; multiplexed against direct.

    python -m benchmarks.bench_mux [--quick]
"""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path

from pyvider_rpcplugin_sync import PluginProcess
from pyvider_rpcplugin_sync.examples import echo_pb2, echo_pb2_grpc, echo_plugin

from ._common import MUX_BUDGET, Row, Settings, Stat, Timed, alternate, calibrate, timed_calls
from ._targets import PyviderWorker

PLUGIN = [sys.executable, str(Path(__file__).resolve().parent / "_broker_plugin.py")]
PAYLOAD = b"x" * 64


def run(settings: Settings, pyvider: PyviderWorker | None) -> list[Row]:
    rows: list[Row] = []
    for tls in (False, True):
        rows += measure(tls, settings)
    return rows


def measure(tls: bool, settings: Settings) -> list[Row]:
    from ._broker_plugin import HANDSHAKE

    mode = "mtls" if tls else "plain"
    calls: dict[str, Timed] = {}
    with contextlib.ExitStack() as stack:
        for name, multiplex in (("direct", False), ("mux", True)):
            plugin = stack.enter_context(
                PluginProcess(
                    PLUGIN,
                    handshake=HANDSHAKE,
                    stub=echo_pb2_grpc.EchoStub,
                    tls=tls,
                    multiplex=multiplex,
                )
            )
            host_id = plugin.broker.next_id()
            stack.enter_context(
                plugin.broker.accept_and_serve(host_id, echo_plugin.register, max_workers=8)
            )
            main = echo_pb2.EchoRequest(payload=PAYLOAD)
            callback = echo_pb2.EchoRequest(payload=b"cb:%d:" % host_id + PAYLOAD)
            stub = plugin.stub
            calls[f"{name}.main"] = timed_calls(functools.partial(stub.Echo, main))
            calls[f"{name}.callback"] = timed_calls(functools.partial(stub.Echo, callback))
            calls[f"{name}.callback"](1)  # the plugin dials back before calibrating
        direct_main = calls["direct.main"]
        chunk = calibrate(lambda: direct_main(1), settings.chunk_seconds)
        rounds = max(3, round(settings.block_seconds / settings.chunk_seconds))
        alts = {
            kind: alternate(
                {"direct": calls[f"direct.{kind}"], "mux": calls[f"mux.{kind}"]},
                "direct",
                chunk=chunk if kind == "main" else max(1, chunk // 2),
                rounds=rounds,
                blocks=settings.blocks,
            )
            for kind in ("main", "callback")
        }
    rows: list[Row] = []
    for kind, title in (("main", "main-channel call"), ("callback", "callback round trip")):
        alt = alts[kind]
        rows.append(
            Row(
                f"mux.{kind}.unix.{mode}",
                f"multiplexed {title}, unix {mode}",
                "calls/s",
                Stat.of(alt.rates["mux"]),
                Stat.of(alt.rates["direct"]),
                alt.score("mux"),
                budget=MUX_BUDGET,
                note="raw = the same call in a session with direct connections; ours = "
                "in a multiplexed session (yamux over one socket, relayed)",
            )
        )
    return rows


if __name__ == "__main__":
    from .__main__ import main

    sys.exit(main(["--only", "mux", *sys.argv[1:]]))
