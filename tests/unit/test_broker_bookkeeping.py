"""The Broker's bookkeeping: ids, parked connection info, expiry, errors, close.

No peer here: announcements are fed in with ``receive`` as the StartStream
reader does; dialing makes a lazy grpc channel that never connects.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator

import grpc
import pytest

from pyvider_rpcplugin_sync import Broker, BrokerClosed, BrokerError, BrokerTimeout
from pyvider_rpcplugin_sync._broker.net import BrokerNetwork
from pyvider_rpcplugin_sync._plugin.server import _takes_broker
from pyvider_rpcplugin_sync._protos.goplugin_pb2 import ConnInfo

pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def broker() -> Iterator[Broker]:
    broker = Broker("host")
    broker._attach(BrokerNetwork("unix", {}))
    yield broker
    broker.close()


def info(service_id: int, address: str = "/tmp/x.sock", network: str = "unix") -> ConnInfo:
    return ConnInfo(service_id=service_id, network=network, address=address)


def test_next_id_is_unique_across_threads(broker: Broker) -> None:
    ids: list[int] = []

    def take() -> None:
        for _ in range(500):
            ids.append(broker.next_id())

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(ids) == list(range(1, 4001))


def test_announcement_is_claimed_once(broker: Broker) -> None:
    broker._receive(info(7))
    with broker.dial(7, timeout=0) as channel:
        assert isinstance(channel, grpc.Channel)
        assert channel.service_id == 7  # type: ignore[attr-defined]
    with pytest.raises(BrokerTimeout, match="broker id 7"):
        broker.dial(7, timeout=0)


def test_a_second_announcement_of_an_id_is_dropped(broker: Broker) -> None:
    broker._receive(info(3, "/tmp/first"))
    broker._receive(info(3, "/tmp/second"))
    assert broker._claim(3, timeout=0).address == "/tmp/first"


def test_unclaimed_announcements_expire_after_five_seconds(broker: Broker) -> None:
    clock = Clock()
    broker._clock = clock
    broker._receive(info(1))
    broker._receive(info(2))
    clock.now += 4.9
    broker.dial(1, timeout=0).close()  # still there
    clock.now += 0.2  # 5.1 s after the announcement
    with pytest.raises(BrokerTimeout):
        broker.dial(2, timeout=0)


def test_dial_waits_for_an_announcement_that_comes_later(broker: Broker) -> None:
    result: list[grpc.Channel] = []
    dialer = threading.Thread(target=lambda: result.append(broker.dial(9, timeout=10)))
    dialer.start()
    broker._receive(info(9))
    dialer.join(timeout=10)
    assert [getattr(c, "service_id", None) for c in result] == [9]
    result[0].close()


def test_close_wakes_a_waiting_dialer_with_broker_closed(broker: Broker) -> None:
    errors: list[BaseException] = []

    def dial() -> None:
        try:
            broker.dial(11, timeout=20)
        except BaseException as exc:
            errors.append(exc)

    dialer = threading.Thread(target=dial)
    dialer.start()
    broker.close()
    dialer.join(timeout=10)
    assert not dialer.is_alive()
    assert [type(e) for e in errors] == [BrokerClosed]


def test_an_unknown_network_is_a_broker_error(broker: Broker) -> None:
    broker._receive(info(4, "somewhere", network="pipe"))
    with pytest.raises(BrokerError, match="unknown address type 'pipe'") as caught:
        broker.dial(4, timeout=0)
    assert caught.value.hint


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, True, "7", None])
def test_invalid_ids_are_refused(broker: Broker, bad: object) -> None:
    with pytest.raises(BrokerError, match="invalid broker id"):
        broker.dial(bad, timeout=0)  # type: ignore[arg-type]
    with pytest.raises(BrokerError, match="invalid broker id"):
        broker.accept_and_serve(bad, lambda server: None)  # type: ignore[arg-type]


def test_a_broker_without_a_session_says_so() -> None:
    broker = Broker("plugin")
    with pytest.raises(BrokerError, match="not connected to a session") as caught:
        broker.dial(1, timeout=0)
    assert caught.value.hint


def test_announcements_flow_out_in_order_until_closed(broker: Broker) -> None:
    broker._receive(info(1))  # incoming: not echoed out
    for service_id in (5, 6):
        broker._outgoing.append(info(service_id))
    assert broker._next_announcement(lambda: False) == info(5)
    assert broker._next_announcement(lambda: False) == info(6)
    assert broker._next_announcement(lambda: True) is None
    broker.close()
    assert broker._next_announcement(lambda: False) is None
    with pytest.raises(BrokerClosed):
        broker.dial(1, timeout=0)
    with pytest.raises(BrokerClosed):
        broker.accept_and_serve(broker.next_id(), lambda server: None)


def test_registrars_that_take_a_broker_are_recognised() -> None:
    def plain(server: object) -> None: ...

    def with_broker(server: object, broker: object) -> None: ...

    def with_default(server: object, broker: object = None) -> None: ...

    assert not _takes_broker(plain)  # type: ignore[arg-type]
    assert _takes_broker(with_broker)  # type: ignore[arg-type]
    assert _takes_broker(with_default)  # type: ignore[arg-type]
    assert not _takes_broker(functools.partial(with_broker, None))  # type: ignore[arg-type]
    assert not _takes_broker(print)  # type: ignore[arg-type]
