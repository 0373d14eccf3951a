"""plugin.GRPCBroker/StartStream: the connection-info stream of a session.

The wire is in docs/protocol.md, "GRPCBroker".

The host opens the stream right after connecting; connection info then flows
both ways. What the peer sends is parked in the ``_broker.broker.Broker``;
what this side announces is streamed out. As in go-plugin, a plugin's broker
is single-use: when the host ends the stream, the plugin's broker closes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import grpc

from .._broker.broker import Broker
from .._broker.net import BrokerNetwork
from .._constants import (
    BROKER_SERVICE,
    ENV_MAX_PORT,
    ENV_MIN_PORT,
    ENV_UNIX_SOCKET_DIR,
    NETWORK_TCP,
    NETWORK_UNIX,
    READER_JOIN_TIMEOUT,
)
from .._protos.goplugin_pb2 import ConnInfo

if TYPE_CHECKING:
    from .._broker.mux import MuxSession
    from .._transport.dial import SessionSecurity

logger = logging.getLogger(__name__)


def _read_into(broker: Broker, incoming: Iterator[ConnInfo]) -> None:
    try:
        for info in incoming:
            broker._receive(info)
    except grpc.RpcError:
        pass  # the stream ended with the connection; go-plugin ignores this too
    except Exception:
        logger.debug("broker stream reader stopped", exc_info=True)


# --- plugin side: the servicer ----------------------------------------------------------


def broker_handler(broker: Broker) -> grpc.GenericRpcHandler:
    def start_stream(
        requests: Iterator[ConnInfo], context: grpc.ServicerContext
    ) -> Iterator[ConnInfo]:
        def read() -> None:
            _read_into(broker, requests)
            # The host closed its broker (go-plugin closes it first on Kill).
            broker.close()

        reader = threading.Thread(target=read, name="plugin-broker-read", daemon=True)
        reader.start()
        context.add_callback(broker._wake)
        while (info := broker._next_announcement(lambda: not context.is_active())) is not None:
            yield info

    return grpc.method_handlers_generic_handler(
        BROKER_SERVICE,
        {
            "StartStream": grpc.stream_stream_rpc_method_handler(
                start_stream,
                request_deserializer=ConnInfo.FromString,
                response_serializer=ConnInfo.SerializeToString,
            )
        },
    )


# --- host side: the client --------------------------------------------------------------


class BrokerStream:
    """The host's ``StartStream`` call, held open until ``close``; errors are ignored."""

    def __init__(self, channel: grpc.Channel, broker: Broker) -> None:
        self._broker = broker
        self._done = False
        method = channel.stream_stream(
            f"/{BROKER_SERVICE}/StartStream",
            request_serializer=ConnInfo.SerializeToString,
            response_deserializer=ConnInfo.FromString,
        )
        # grpc consumes the request iterator in a thread of its own.
        self._call = method(self._requests())
        self._reader = threading.Thread(
            target=_read_into, args=(broker, self._call), name="host-broker-read", daemon=True
        )
        self._reader.start()

    def _requests(self) -> Iterator[ConnInfo]:
        while (info := self._broker._next_announcement(lambda: self._done)) is not None:
            yield info

    def close(self, timeout: float = READER_JOIN_TIMEOUT) -> None:
        self._done = True
        self._call.cancel()
        self._broker._wake()
        if self._reader is not threading.current_thread():
            self._reader.join(timeout)


def open_host_broker(
    channel: grpc.Channel,
    network: str,
    socket_dir: str | None,
    environ: Mapping[str, str],
    security: SessionSecurity | None,
    *,
    mux: MuxSession | None = None,
) -> Broker:
    """The host's broker for one session; its StartStream opens now, as a go-plugin host's.

    Brokered servers listen like the plugin: unix sockets in the session's socket
    directory, or loopback TCP (within the host's PLUGIN_MIN/MAX_PORT) for a TCP session.
    Multiplexed, they listen in the session's private directory for relayed streams.
    """
    bind_environ = {k: v for k, v in environ.items() if k in (ENV_MIN_PORT, ENV_MAX_PORT)}
    if mux is not None:
        socket_dir = mux.private_dir
    if socket_dir is not None:
        bind_environ[ENV_UNIX_SOCKET_DIR] = socket_dir
    transport = NETWORK_TCP if network == NETWORK_TCP and mux is None else NETWORK_UNIX
    broker = Broker("host")
    stream = BrokerStream(channel, broker)
    network_of = BrokerNetwork(transport, bind_environ, security)
    broker._attach(network_of, on_close=stream.close, mux=mux)
    return broker
