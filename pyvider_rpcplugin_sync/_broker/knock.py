"""The multiplexed side of a ``Broker``: knocks (docs/multiplexing.md).

Dialing an id knocks on the broker stream and waits for the acknowledgement before each
connection; a knock from the peer is answered at once, and routes the next stream the
peer opens to that id's server (``MuxSession.knocked``). Knocks of one side are
serialised, so that each stream follows its own knock.
"""

from __future__ import annotations

import collections
import threading
from typing import TYPE_CHECKING

from .._constants import NETWORK_UNIX
from .._errors import BrokerClosed, BrokerError, BrokerTimeout
from .._protos.goplugin_pb2 import ConnInfo

if TYPE_CHECKING:
    from .mux import MuxSession
    from .net import BrokeredChannel, BrokerNetwork

_HINT = "the peer must serve this id (accept_and_serve) before it is dialed"


class KnockingBroker:
    """The knock half of ``Broker``. The state and the helpers named here are the
    broker's own; they are declared here for the type checker."""

    _cond: threading.Condition
    _closed: bool
    _outgoing: collections.deque[ConnInfo]
    _parked: dict[int, tuple[ConnInfo, float]]
    _channels: set[BrokeredChannel]
    _mux: MuxSession | None
    _knock_lock: threading.Lock

    def _claim(self, service_id: int, timeout: float) -> ConnInfo:
        raise NotImplementedError

    def _closed_error(self) -> BrokerClosed:
        raise NotImplementedError

    def _forget_channel(self, channel: BrokeredChannel) -> None:
        raise NotImplementedError

    def _bridge_directory(self) -> str:
        raise NotImplementedError

    def _answer_knock(self, info: ConnInfo) -> bool:
        """A knock from the peer: acknowledge it (with the error, if any); False for
        anything else."""
        mux = self._mux
        if mux is None or not info.HasField("knock") or not info.knock.knock or info.knock.ack:
            return False
        error = mux.knocked(info.service_id)
        knock = ConnInfo.Knock(knock=True, ack=True, error=error)
        with self._cond:
            if not self._closed:
                self._outgoing.append(ConnInfo(service_id=info.service_id, knock=knock))
                self._cond.notify_all()
        return True

    def _mux_dial(
        self,
        service_id: int,
        network: BrokerNetwork,
        timeout: float,
        call_timeout: float | None,
    ) -> BrokeredChannel:
        """A channel whose every connection knocks for ``service_id``, then rides a
        yamux stream. Lazy, as without multiplexing: a refused knock shows on the calls."""
        assert self._mux is not None
        relay = self._mux.dial_relay(service_id, lambda: self._knock(service_id, timeout))
        info = ConnInfo(service_id=service_id, network=NETWORK_UNIX, address=relay.path)

        def closed(channel: BrokeredChannel) -> None:
            relay.close()
            self._forget_channel(channel)

        try:
            channel = network.dial(info, self._bridge_directory, closed, call_timeout)
        except BaseException:
            relay.close()
            raise
        with self._cond:
            if not self._closed:
                self._channels.add(channel)
                return channel
        channel.close()
        raise self._closed_error()

    def _knock(self, service_id: int, timeout: float) -> None:
        """Send a knock for ``service_id`` and wait for its acknowledgement."""
        with self._knock_lock:
            with self._cond:
                if self._closed:
                    raise self._closed_error()
                self._parked.pop(service_id, None)  # a stale acknowledgement
                knock = ConnInfo.Knock(knock=True)
                self._outgoing.append(ConnInfo(service_id=service_id, knock=knock))
                self._cond.notify_all()
            try:
                ack = self._claim(service_id, timeout)
            except BrokerTimeout:
                raise BrokerTimeout(
                    f"timeout waiting for multiplexing knock handshake on id {service_id}",
                    hint=_HINT,
                ) from None
            if not (ack.knock.knock and ack.knock.ack) or ack.knock.error:
                why = ack.knock.error or "no acknowledgement"
                raise BrokerError(f"failed to knock for id {service_id}: {why}", hint=_HINT)
