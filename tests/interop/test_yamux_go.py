"""Our yamux (``_transport/yamux``) against hashicorp/yamux v0.1.2, the version go-plugin
1.6 and 1.8 multiplex with, configured as go-plugin configures it.

``go18/cmd/yamuxecho18`` is the Go side: ``serve`` is a yamux server echoing every stream;
``dial`` is a yamux client that pings, opens N concurrent streams, writes a pattern on
each, half-closes and checks the echo. Sizes above the 256 KiB window make both sides
wait for window updates; many streams at once interleave their frames.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvider_rpcplugin_sync._transport.yamux.driver import Stream, YamuxConnection
from pyvider_rpcplugin_sync._transport.yamux.session import SessionClosedError

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


def pattern(index: int, size: int) -> bytes:
    return bytes((i * 7 + index * 13) % 251 for i in range(size))


def read_all(stream: Stream) -> bytes:
    chunks = []
    while chunk := stream.read(timeout=20):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="yx-"))  # short: unix socket paths are small
    yield directory
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()


@pytest.fixture
def echo18(go_module_programs) -> Path:  # type: ignore[no-untyped-def]
    return go_module_programs("go18")["yamuxecho18"]


def start_go_server(binary: Path, path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [str(binary), "serve", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def dial(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    return sock


@pytest.mark.parametrize(("streams", "size"), [(1, 10), (1, 3 * 1024 * 1024), (16, 300_000)])
def test_our_client_against_go_yamux_server(
    echo18: Path, sock_dir: Path, streams: int, size: int
) -> None:
    proc = start_go_server(echo18, sock_dir / "s")
    try:
        with YamuxConnection(dial(sock_dir / "s"), client=True) as conn:
            assert conn.ping() >= 0
            results: dict[int, bytes] = {}

            def one(index: int) -> None:
                stream = conn.open()
                assert stream.stream_id % 2 == 1  # the client's ids are odd
                writer = threading.Thread(
                    target=lambda: (stream.write(pattern(index, size)), stream.close())
                )
                writer.start()
                results[index] = read_all(stream)
                writer.join(20)

            workers = [threading.Thread(target=one, args=(n,)) for n in range(streams)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(40)
            for index in range(streams):
                assert results[index] == pattern(index, size), f"stream {index} differs"
        # Our go-away and socket close end the Go session: it exits cleanly.
        assert proc.wait(timeout=10) == 0
        assert proc.stdout is not None and "session over" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.parametrize(("streams", "size"), [(1, 1), (4, 1024 * 1024), (32, 40_000)])
def test_go_yamux_client_against_our_server(
    echo18: Path, sock_dir: Path, streams: int, size: int
) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_dir / "s"))
    listener.listen(1)
    proc = subprocess.Popen(
        [str(echo18), "dial", str(sock_dir / "s"), str(streams), str(size)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    echoers: list[threading.Thread] = []
    try:
        listener.settimeout(20)
        sock, _ = listener.accept()
        with YamuxConnection(sock, client=False) as conn:

            def echo(stream: Stream) -> None:
                while chunk := stream.read(timeout=20):
                    stream.write(chunk)
                stream.close()

            for _ in range(streams):
                stream = conn.accept(timeout=20)
                assert stream.stream_id % 2 == 1  # opened by the Go client
                echoers.append(threading.Thread(target=echo, args=(stream,)))
                echoers[-1].start()
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            assert out.strip() == f"ok {streams}"
            # The Go client closed its session: ours ends and accept says so.
            with pytest.raises(SessionClosedError):
                conn.accept(timeout=10)
        for echoer in echoers:
            echoer.join(10)
            assert not echoer.is_alive()
    finally:
        listener.close()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
