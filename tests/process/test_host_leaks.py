"""Start/stop cycles leave nothing behind: no process, thread, fd or socket directory.

The number of cycles is PYVIDER_LEAK_CYCLES (default 200, the CI figure); each
cycle is a real spawn -> handshake -> call -> Shutdown of the echo plugin,
alternating TLS and transport.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from process_helpers import ECHO, PYTHON, child_processes

from pyvider_rpcplugin_sync._constants import SOCKET_DIR_PREFIX
from pyvider_rpcplugin_sync._host.process import PluginProcess
from pyvider_rpcplugin_sync._protos import counter_pb2, counter_pb2_grpc, echo_pb2, echo_pb2_grpc
from pyvider_rpcplugin_sync.examples.counter_plugin import COUNTER_HANDSHAKE

CYCLES = int(os.environ.get("PYVIDER_LEAK_CYCLES", "200"))
# Brokered cycles cost about twice as much: a quarter as many.
BROKER_CYCLES = max(CYCLES // 4, 1)
COUNTER = [PYTHON, "-m", "pyvider_rpcplugin_sync.examples.counter_plugin"]
pytestmark = pytest.mark.timeout(60 + 2 * CYCLES + 4 * BROKER_CYCLES)


def cycle(index: int) -> None:
    tls, transport = index % 2 == 0, ("unix", "tcp")[index // 2 % 2]
    with PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub, tls=tls, transport=transport) as plugin:
        payload = f"cycle {index}".encode()
        assert (
            plugin.stub.Echo(echo_pb2.EchoRequest(payload=payload), timeout=10).payload == payload
        )
    assert plugin.returncode == 0


class Adder(counter_pb2_grpc.AddHelperServicer):
    def Sum(
        self, request: counter_pb2.SumRequest, context: grpc.ServicerContext
    ) -> counter_pb2.SumResponse:
        return counter_pb2.SumResponse(r=request.a + request.b)


def broker_cycle(index: int, *, multiplex: bool = False) -> None:
    """A session that serves a callback, is called back, and leaves one server to close."""
    tls, transport = index % 2 == 0, ("unix", "tcp")[index // 2 % 2]
    with PluginProcess(
        COUNTER,
        handshake=COUNTER_HANDSHAKE,
        stub=counter_pb2_grpc.CounterStub,
        tls=tls,
        transport=transport,
        multiplex=multiplex,
    ) as plugin:
        broker = plugin.broker
        add_id = broker.next_id()
        with broker.accept_and_serve(
            add_id, lambda s: counter_pb2_grpc.add_AddHelperServicer_to_server(Adder(), s)
        ):
            request = counter_pb2.CounterPutRequest(add_server=add_id, key="k", value=index)
            plugin.stub.Put(request, timeout=10)
        # Still serving when the session closes: the close must stop it.
        left_open = broker.accept_and_serve(
            broker.next_id(), lambda s: counter_pb2_grpc.add_AddHelperServicer_to_server(Adder(), s)
        )
        assert plugin.stub.Get(counter_pb2.CounterGetRequest(key="k"), timeout=10).value == index
    assert left_open.stopped
    assert plugin.returncode == 0


def open_fds() -> Counter[str]:
    """Kinds of open fds ("socket", "pipe", "anon_inode:[eventpoll]", paths) and counts."""
    kinds: Counter[str] = Counter()
    for fd in os.listdir("/proc/self/fd"):
        target = _readlink(f"/proc/self/fd/{fd}")
        if target is not None:
            kinds[re.sub(r":\[\d+\]$", "", target)] += 1
    return kinds


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None  # the fd listdir itself used, closed meanwhile


def socket_dirs() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith(SOCKET_DIR_PREFIX)}


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's socket dirs go here, apart from other test runs sharing /tmp."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def native_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def settle_threads(before: set[threading.Thread]) -> None:
    """Join threads that are still finishing (grpc's short-lived helpers): no sleeping."""
    for thread in threading.enumerate():
        if thread not in before and thread is not threading.current_thread():
            thread.join(timeout=5)


def test_start_stop_cycles_leak_nothing() -> None:
    assert_cycles_leak_nothing(cycle, CYCLES)


def test_brokered_sessions_leak_nothing() -> None:
    """Brokered servers, listeners, channels, bridges, streams: all gone with the session."""
    assert_cycles_leak_nothing(broker_cycle, BROKER_CYCLES)


def test_multiplexed_sessions_leak_nothing() -> None:
    """The same, multiplexed: the yamux connection, its threads, relays and dial sockets."""
    assert_cycles_leak_nothing(lambda index: broker_cycle(index, multiplex=True), BROKER_CYCLES)


def assert_cycles_leak_nothing(run: Callable[[int], None], cycles: int) -> None:
    for index in range(4):  # warm-up: grpc creates some process-wide state lazily
        run(index)
    settle_threads(set(threading.enumerate()))
    threads, fds, dirs, natives = (
        set(threading.enumerate()),
        open_fds(),
        socket_dirs(),
        native_threads(),
    )
    began = time.monotonic()
    for index in range(cycles):
        run(index)
        assert not child_processes(), f"cycle {index} left a child process"
    elapsed = time.monotonic() - began
    settle_threads(threads)
    assert set(threading.enumerate()) == threads
    # Nothing more of any kind: no socket, pipe or file. grpc's own pollers
    # (anonymous eventfd/epoll inodes) come and go with its channels on its own
    # schedule, so those are bounded instead: a per-cycle leak would be hundreds.
    grown = open_fds() - fds
    pollers = Counter({kind: n for kind, n in grown.items() if kind.startswith("anon_inode:")})
    assert grown - pollers == Counter()
    assert sum(pollers.values()) <= 4
    assert socket_dirs() == dirs == set()
    # grpc's C core runs a small, varying pool of native threads that it retires
    # after about a second idle; waiting for that would mean sleeping. A leak of
    # one thread per cycle would show up as hundreds, far above this bound.
    assert native_threads() <= natives + 16
    print(f"{cycles} cycles in {elapsed:.1f} s, {elapsed / max(cycles, 1) * 1000:.0f} ms each")
