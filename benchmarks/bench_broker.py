"""GRPCBroker: a brokered callback round trip and a brokered channel, against a direct call.

One plugin (``_broker_plugin.py``) on a unix socket, plaintext and mTLS. The host
serves an echo server on a broker id; the plugin serves one too. Three variants
alternate in ~20 ms chunks (order rotating), all 64 B unary echoes:

- ``direct``: ``plugin.stub.Echo`` on the main channel, the reference (``plugin.stub``
  is a plain grpc stub on a plain channel: this is raw grpcio's call path);
- ``brokered``: the same call on a channel from ``plugin.broker.dial(id)`` to the
  plugin's brokered server (one hop; the ratio is the brokered channel's overhead);
- ``callback``: host -> plugin -> host: the plugin answers by calling the host's
  brokered server over a channel it dialed once (two hops: about half the direct
  rate is the most any implementation reaches).

    python -m benchmarks.bench_broker [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

from pyvider_rpcplugin_sync import PluginProcess
from pyvider_rpcplugin_sync.examples import echo_pb2, echo_pb2_grpc, echo_plugin

from ._common import Row, Settings, Stat, alternate, calibrate, timed_calls
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
    with PluginProcess(PLUGIN, handshake=HANDSHAKE, stub=echo_pb2_grpc.EchoStub, tls=tls) as p:
        broker = p.broker
        host_id = broker.next_id()
        with broker.accept_and_serve(host_id, echo_plugin.register, max_workers=8):
            plugin_id = int(p.stub.Echo(echo_pb2.EchoRequest(payload=b"serve"), timeout=10).payload)
            with broker.dial(plugin_id) as channel:
                brokered = echo_pb2_grpc.EchoStub(channel)
                direct_request = echo_pb2.EchoRequest(payload=PAYLOAD)
                callback_request = echo_pb2.EchoRequest(payload=b"cb:%d:" % host_id + PAYLOAD)
                variants = {
                    "direct": timed_calls(lambda: p.stub.Echo(direct_request)),
                    "brokered": timed_calls(lambda: brokered.Echo(direct_request)),
                    "callback": timed_calls(lambda: p.stub.Echo(callback_request)),
                }
                for name in ("brokered", "callback"):
                    variants[name](1)  # connect before calibrating
                chunk = calibrate(lambda: p.stub.Echo(direct_request), settings.chunk_seconds)
                rounds = max(3, round(settings.block_seconds / settings.chunk_seconds))
                alt = alternate(
                    variants, "direct", chunk=chunk, rounds=rounds, blocks=settings.blocks
                )
    direct = Stat.of(alt.rates["direct"])
    return [
        Row(
            f"broker.channel.unix.{mode}",
            f"brokered channel, unix {mode}",
            "calls/s",
            Stat.of(alt.rates["brokered"]),
            direct,
            alt.score("brokered"),
            note="raw = a direct call on the main channel; ours = the same call on a "
            "channel from broker.dial()",
        ),
        Row(
            f"broker.callback.unix.{mode}",
            f"brokered callback round trip, unix {mode}",
            "calls/s",
            Stat.of(alt.rates["callback"]),
            direct,
            alt.score("callback"),
            note="raw = one direct call; ours = host -> plugin -> host over the broker "
            "(two hops: about 0.5x is the most any implementation reaches)",
        ),
    ]


if __name__ == "__main__":
    from .__main__ import main

    sys.exit(main(["--only", "broker", *sys.argv[1:]]))
