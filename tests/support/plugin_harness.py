"""Start a plugin subprocess the way a host does, without the library's host side.

The plugin-side tests use this deliberately minimal host (plain subprocess and
grpcio) so that they check the plugin against the protocol, not against our
own host implementation.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from pyvider_rpcplugin_sync._constants import SOCKET_DIR_PREFIX
from pyvider_rpcplugin_sync._protocol.handshake import HandshakeLine, parse_handshake

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "tests" / "plugins"
KV_ENV = {"BASIC_PLUGIN": "hello", "PLUGIN_PROTOCOL_VERSIONS": "1"}
DEFAULT_ENV = {"PLUGIN_MAGIC_COOKIE": "test_cookie_value", "PLUGIN_PROTOCOL_VERSIONS": "1"}


def module_cmd(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def script_cmd(name: str) -> list[str]:
    return [sys.executable, str(PLUGINS / name)]


class OutputBuffer:
    """What a drain thread has read so far; tests wait on it instead of polling."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._changed = threading.Condition()

    def append(self, chunk: bytes) -> None:
        with self._changed:
            self._chunks.append(chunk)
            self._changed.notify_all()

    def text(self) -> str:
        with self._changed:
            return b"".join(self._chunks).decode("utf-8", "replace")

    def wait_for(self, needle: str, timeout: float = 10) -> str:
        with self._changed:
            found = self._changed.wait_for(
                lambda: needle in b"".join(self._chunks).decode("utf-8", "replace"), timeout
            )
        text = self.text()
        if not found:
            raise AssertionError(f"{needle!r} not in the output: {text[-2000:]}")
        return text


@dataclass
class StartedPlugin:
    proc: subprocess.Popen[bytes]
    line: HandshakeLine
    raw_line: bytes
    stderr_buffer: OutputBuffer = field(default_factory=OutputBuffer)

    @property
    def target(self) -> str:
        if self.line.network == "unix":
            return f"unix:{self.line.address}"
        return self.line.address

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.target)

    @property
    def stderr(self) -> str:
        return self.stderr_buffer.text()


def run_to_exit(
    cmd: Sequence[str], env: Mapping[str, str], timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    """Run a plugin that is expected to fail at start."""
    return subprocess.run(
        cmd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def read_first_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise TimeoutError(f"no handshake line within {timeout}s (got {data!r})")
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    return data


def _drain(stream: object, sink: OutputBuffer | None) -> None:
    read = stream.read1  # type: ignore[attr-defined]
    while chunk := read(65536):
        if sink is not None:
            sink.append(chunk)


def _remove_own_socket_dir(line: HandshakeLine) -> None:
    # Killed like a plugin whose host died, a plugin that made its own socket
    # directory (no PLUGIN_UNIX_SOCKET_DIR) cannot remove it: the harness, its host, does.
    directory = os.path.dirname(line.address)
    if line.network == "unix" and os.path.basename(directory).startswith(SOCKET_DIR_PREFIX):
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def started(
    cmd: Sequence[str], env: Mapping[str, str], timeout: float = 20
) -> Iterator[StartedPlugin]:
    """Spawn, read the handshake, drain stdout/stderr; kill on the way out if still alive."""
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stderr_buffer = OutputBuffer()
    err_thread = threading.Thread(target=_drain, args=(proc.stderr, stderr_buffer), daemon=True)
    err_thread.start()
    plugin: StartedPlugin | None = None
    try:
        raw = read_first_line(proc, timeout)
        first = raw.partition(b"\n")[0]
        plugin = StartedPlugin(proc, parse_handshake(first.decode()), first, stderr_buffer)
        out_thread = threading.Thread(target=_drain, args=(proc.stdout, None), daemon=True)
        out_thread.start()
        yield plugin
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        err_thread.join(timeout=5)
        if plugin is not None:
            _remove_own_socket_dir(plugin.line)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
