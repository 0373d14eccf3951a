"""plugin.GRPCBroker: the ``StartStream`` exchange of connection info (protocol.md §4.3).

A go-plugin host opens this stream right after connecting and ignores its
errors. Connection info flows both ways: what the peer sends is parked per
service id (a buffer of one, dropped after a few seconds unclaimed, as Go
does); what this side announces is queued and streamed out.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Iterator

import grpc

from .._constants import BROKER_SERVICE
from .._protos.goplugin_pb2 import ConnInfo

logger = logging.getLogger(__name__)

# go-plugin's Dial wait and the lifetime of unclaimed connection info.
BROKER_TIMEOUT = 5.0


class Broker:
    """Both ends of the connection-info exchange, shared by every stream."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._outgoing: collections.deque[ConnInfo] = collections.deque()
        self._parked: dict[int, tuple[ConnInfo, float]] = {}
        # One condition for both directions: announcements, arrivals, close.
        self._arrived = threading.Condition()
        self._closed = threading.Event()

    def next_id(self) -> int:
        return next(self._ids)

    def announce(self, info: ConnInfo) -> None:
        """Queue connection info for the peer (go-plugin's Accept side)."""
        with self._arrived:
            self._outgoing.append(info)
            self._arrived.notify_all()

    def wait_for(self, service_id: int, timeout: float = BROKER_TIMEOUT) -> ConnInfo:
        """The peer's connection info for ``service_id`` (go-plugin's Dial side)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                parked = self._parked.pop(service_id, None)
                if parked is not None:
                    return parked[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed.is_set():
                    raise TimeoutError(
                        f"timeout waiting for connection info for broker id {service_id}"
                    )
                self._arrived.wait(remaining)

    def receive(self, info: ConnInfo) -> None:
        now = time.monotonic()
        with self._arrived:
            for stale in [k for k, (_, t) in self._parked.items() if now - t > BROKER_TIMEOUT]:
                del self._parked[stale]
            # A buffer of one per id: duplicates are dropped, as in go-plugin.
            self._parked.setdefault(info.service_id, (info, now))
            self._arrived.notify_all()

    def close(self) -> None:
        self._closed.set()
        self._wake()

    def _wake(self) -> None:
        with self._arrived:
            self._arrived.notify_all()

    def stream(
        self, requests: Iterator[ConnInfo], context: grpc.ServicerContext
    ) -> Iterator[ConnInfo]:
        reader = threading.Thread(
            target=self._read, args=(requests,), name="plugin-broker-read", daemon=True
        )
        reader.start()
        context.add_callback(self._wake)
        while True:
            with self._arrived:
                self._arrived.wait_for(
                    lambda: self._outgoing or self._closed.is_set() or not context.is_active()
                )
                if self._closed.is_set() or not context.is_active():
                    return
                info = self._outgoing.popleft()
            yield info

    def _read(self, requests: Iterator[ConnInfo]) -> None:
        try:
            for info in requests:
                self.receive(info)
        except grpc.RpcError:
            pass  # the stream ended with the connection; go-plugin ignores this too
        except Exception:
            logger.debug("broker stream reader stopped", exc_info=True)


def broker_handler(broker: Broker) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        BROKER_SERVICE,
        {
            "StartStream": grpc.stream_stream_rpc_method_handler(
                broker.stream,
                request_deserializer=ConnInfo.FromString,
                response_serializer=ConnInfo.SerializeToString,
            )
        },
    )
