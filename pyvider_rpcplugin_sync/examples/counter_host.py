"""The host side of go-plugin's bidirectional (counter) example: it serves the callbacks.

For every ``put`` the host serves an ``AddHelper`` on a fresh broker id, passes
the id in the request, and the plugin calls ``Sum`` on it. Works with the
bundled ``counter_plugin`` and with go-plugin's own Go counter plugin.
``python -m pyvider_rpcplugin_sync counter [-- CMD...] put KEY N | get KEY ...``
runs these functions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import grpc

from pyvider_rpcplugin_sync import PluginProcess
from pyvider_rpcplugin_sync.examples import counter_pb2, counter_pb2_grpc

CALL_TIMEOUT = 10.0


class Adder(counter_pb2_grpc.AddHelperServicer):
    """The arithmetic the plugin calls back for."""

    def Sum(
        self, request: counter_pb2.SumRequest, context: grpc.ServicerContext
    ) -> counter_pb2.SumResponse:
        return counter_pb2.SumResponse(r=request.a + request.b)


def add_adder(server: grpc.Server) -> None:
    counter_pb2_grpc.add_AddHelperServicer_to_server(Adder(), server)


def put(plugin: PluginProcess[counter_pb2_grpc.CounterStub], key: str, value: int) -> None:
    """Add ``value`` to ``key``'s count; the plugin calls our AddHelper to do the sum."""
    broker = plugin.broker
    add_id = broker.next_id()
    with broker.accept_and_serve(add_id, add_adder):
        request = counter_pb2.CounterPutRequest(add_server=add_id, key=key, value=value)
        plugin.stub.Put(request, timeout=CALL_TIMEOUT)


def get(plugin: PluginProcess[counter_pb2_grpc.CounterStub], key: str) -> int:
    reply = plugin.stub.Get(counter_pb2.CounterGetRequest(key=key), timeout=CALL_TIMEOUT)
    return int(reply.value)


def parse_ops(words: Sequence[str]) -> list[tuple[str, str, int]]:
    """``put KEY N`` and ``get KEY`` words into (op, key, n) tuples; ValueError if malformed."""
    ops: list[tuple[str, str, int]] = []
    rest = list(words)
    while rest:
        if rest[0] == "put" and len(rest) >= 3:
            try:
                ops.append(("put", rest[1], int(rest[2])))
            except ValueError:
                raise ValueError(f"put {rest[1]} {rest[2]}: N must be an integer") from None
            rest = rest[3:]
        elif rest[0] == "get" and len(rest) >= 2:
            ops.append(("get", rest[1], 0))
            rest = rest[2:]
        else:
            raise ValueError(f"usage: counter [-- CMD...] (put KEY N | get KEY)... at {rest!r}")
    if not ops:
        raise ValueError("usage: counter [-- CMD...] (put KEY N | get KEY)...")
    return ops


def run(
    plugin: PluginProcess[counter_pb2_grpc.CounterStub], ops: Sequence[tuple[str, str, int]]
) -> Iterator[int]:
    """Run ``ops`` in order; yield the count of every ``get``."""
    for op, key, value in ops:
        if op == "put":
            put(plugin, key, value)
        else:
            yield get(plugin, key)
