"""The counter plugin of the examples, plus ``proto.HelperSource``: a brokered server of its own.

``HelperSource.Open`` (tests/interop/go18/counterpb/helper.proto) serves an
``AddHelper`` on a new broker id and returns the id in ``GetResponse.value``; the host
dials that id. Wire types: ``proto.Empty`` -> ``proto.GetResponse``, the counter
protocol's own messages, so the example's generated code serves it.
"""

from __future__ import annotations

import grpc

from pyvider_rpcplugin_sync import Broker, run_plugin
from pyvider_rpcplugin_sync.examples import counter_pb2
from pyvider_rpcplugin_sync.examples.counter_host import add_adder
from pyvider_rpcplugin_sync.examples.counter_plugin import COUNTER_HANDSHAKE
from pyvider_rpcplugin_sync.examples.counter_plugin import register as register_counter


class HelperSource:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    def open(
        self, request: counter_pb2.CounterEmpty, context: grpc.ServicerContext
    ) -> counter_pb2.CounterGetResponse:
        service_id = self._broker.next_id()
        # Serves until the end of the session, when the broker stops it.
        self._broker.accept_and_serve(service_id, add_adder)
        return counter_pb2.CounterGetResponse(value=service_id)


def register(server: grpc.Server, broker: Broker) -> None:
    register_counter(server, broker)
    source = HelperSource(broker)
    handler = grpc.unary_unary_rpc_method_handler(
        source.open,
        request_deserializer=counter_pb2.CounterEmpty.FromString,
        response_serializer=counter_pb2.CounterGetResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("proto.HelperSource", {"Open": handler}),)
    )


if __name__ == "__main__":
    raise SystemExit(run_plugin(register, handshake=COUNTER_HANDSHAKE))
