"""The threaded yamux driver over a real socket pair: streams both ways, blocking reads
that end on reset, timeout or the session's end, and a close that stops both threads."""

from __future__ import annotations

import socket
import threading

import pytest

from pyvider_rpcplugin_sync._transport.yamux.driver import YamuxConnection
from pyvider_rpcplugin_sync._transport.yamux.session import SessionClosedError


def pair() -> tuple[YamuxConnection, YamuxConnection]:
    a, b = socket.socketpair()
    return YamuxConnection(a, client=True, name="c"), YamuxConnection(b, client=False, name="s")


def yamux_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.endswith(("-read", "-write"))]


def test_streams_both_ways_and_a_clean_close() -> None:
    before = len(yamux_threads())
    client, server = pair()
    with client, server:
        up = client.open()
        up.write(b"hello" * 100_000)  # past the window: the reader must give credit back
        up.close()
        down = server.accept(timeout=5)
        got = bytearray()
        while chunk := down.read(timeout=5):
            got += chunk
        assert got == b"hello" * 100_000
        back = server.open()
        assert back.stream_id == 2
        back.write(b"pong")
        assert client.accept(timeout=5).read(timeout=5) == b"pong"
        assert client.ping() >= 0
    assert len(yamux_threads()) == before
    with pytest.raises(SessionClosedError):
        client.open()


def test_reads_end_on_reset_timeout_and_session_end() -> None:
    client, server = pair()
    with client, server:
        stream = client.open()
        far = server.accept(timeout=5)
        with pytest.raises(TimeoutError):
            far.read(timeout=0.05)
        stream.reset()
        with pytest.raises(ConnectionResetError, match="reset"):
            far.read(timeout=5)
        other = client.open()
        far_other = server.accept(timeout=5)
        client.close()
        with pytest.raises(ConnectionResetError, match="session ended"):
            far_other.read(timeout=5)
        with pytest.raises(SessionClosedError):
            server.accept(timeout=5)
        with pytest.raises(ConnectionResetError):
            other.write(b"too late")
