"""What the benchmarks talk to: our plugin, the raw grpcio server, pyvider-rpcplugin.

- :func:`our_plugin`: ``PluginProcess`` running the example echo plugin.
- :class:`RawServer`: ``_raw_server.py`` in a subprocess, and :func:`raw_channel`, a
  hand-written channel with the options the library's host uses.
- :func:`minimal_cycle`: the minimal raw grpcio plugin (``_minimal_plugin.py``) and
  the host a user would write around it, spawn to exit.
- :class:`PyviderWorker`: ``pyvider_echo/worker.py``, a pyvider-rpcplugin host (asyncio)
  in its own process, driven one command at a time so its blocks interleave with ours.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from pyvider_rpcplugin_sync._constants import (
    TLS_SERVER_NAME,
    UNLIMITED_MESSAGE_OPTIONS,
    Transport,
)

if TYPE_CHECKING:
    from pyvider_rpcplugin_sync import PluginProcess
    from pyvider_rpcplugin_sync._protos.echo_pb2_grpc import EchoStub

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ECHO_PLUGIN = (sys.executable, "-m", "pyvider_rpcplugin_sync.examples.echo_plugin")
RAW_SERVER = (sys.executable, str(HERE / "_raw_server.py"))
MINIMAL_PLUGIN = (sys.executable, str(HERE / "_minimal_plugin.py"))
PYVIDER_PLUGIN = (sys.executable, str(HERE / "pyvider_echo" / "plugin.py"))
PYVIDER_WORKER = (sys.executable, str(HERE / "pyvider_echo" / "worker.py"))
# Variables of either library that must not leak in from the caller's shell.
_FOREIGN = ("PLUGIN_", "PYVIDER_CLIENT_", "RAW_CLIENT_CERT")


def clean_environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
    env.pop("PYTEST_CURRENT_TEST", None)
    env.update(extra or {})
    return env


def scrub_environ() -> None:
    """Drop plugin-related variables from this process (so PluginProcess children get none)."""
    for name in [k for k in os.environ if k.startswith(_FOREIGN)]:
        del os.environ[name]


def vm_rss_kib(pid: int | str = "self") -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# --- ours --------------------------------------------------------------------------------


def our_plugin(transport: Transport, tls: bool) -> PluginProcess[EchoStub]:
    """An unstarted ``PluginProcess`` for the echo example (use it in ``with``)."""
    from pyvider_rpcplugin_sync import PluginProcess
    from pyvider_rpcplugin_sync.examples import echo_pb2_grpc

    return PluginProcess(
        list(ECHO_PLUGIN),
        tls=tls,
        transport=transport,
        stub=echo_pb2_grpc.EchoStub,
        cwd=ROOT,
    )


# --- raw grpcio ------------------------------------------------------------------------


def raw_channel(
    network: str, address: str, credentials: grpc.ChannelCredentials | None = None
) -> grpc.Channel:
    """A hand-written channel with the options the library's dialer (_transport/dial.py) uses."""
    target = f"unix:{address}" if network == "unix" else address
    if credentials is None:
        return grpc.insecure_channel(target, options=UNLIMITED_MESSAGE_OPTIONS)
    options = (*UNLIMITED_MESSAGE_OPTIONS, ("grpc.ssl_target_name_override", TLS_SERVER_NAME))
    return grpc.secure_channel(target, credentials, options=options)


def mtls_credentials(server_cert_der_b64: str, identity: Any) -> grpc.ChannelCredentials:
    """grpcio's own mutual TLS: trust exactly the server's certificate, present ours."""
    import ssl

    der = base64.b64decode(server_cert_der_b64)
    return grpc.ssl_channel_credentials(
        root_certificates=ssl.DER_cert_to_PEM_cert(der).encode("ascii"),
        private_key=identity.key_pem,
        certificate_chain=identity.cert_pem,
    )


class RawServer:
    """``_raw_server.py`` as a subprocess: spawn, read its address line, SIGTERM, wait.

    With ``tls`` the host identity is generated here (P-256, as the library's host
    does) and handed over in the environment; the server makes its own.
    """

    def __init__(self, transport: str, tls: bool) -> None:
        self.transport, self.tls = transport, tls
        self.proc: subprocess.Popen[bytes] | None = None
        self.network = self.address = ""
        self.credentials: grpc.ChannelCredentials | None = None

    def start(self) -> RawServer:
        env = clean_environ()
        identity = None
        if self.tls:
            from pyvider_rpcplugin_sync._transport.tls.certs import generate_identity

            identity = generate_identity()
            env["RAW_CLIENT_CERT"] = identity.cert_pem.decode("ascii")
        argv = [*RAW_SERVER, "--transport", self.transport, *(["--tls"] if self.tls else [])]
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, cwd=ROOT
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line:
            self.stop()
            raise RuntimeError(f"raw server exited before printing its address: {argv}")
        self.network, self.address, cert = line.split("|")
        if identity is not None:
            self.credentials = mtls_credentials(cert, identity)
        return self

    def channel(self) -> grpc.Channel:
        return raw_channel(self.network, self.address, self.credentials)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> RawServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def minimal_cycle(tls: bool, request: Any, marks: list[float]) -> None:
    """One cycle of the minimal raw host: spawn, handshake line, channel, one Echo,
    close the channel and the plugin's stdin, reap. ``marks`` gets the perf_counter
    after the connect (line read, channel made) and after the reply."""
    from pyvider_rpcplugin_sync._protos import echo_pb2_grpc

    env = clean_environ()
    identity = None
    if tls:
        from pyvider_rpcplugin_sync._transport.tls.certs import generate_identity

        identity = generate_identity()
        env["PLUGIN_CLIENT_CERT"] = identity.cert_pem.decode("ascii")
    argv = [*MINIMAL_PLUGIN, *(["--tls"] if tls else [])]
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        fields = proc.stdout.readline().decode().strip().split("|")
        if len(fields) != 6:
            raise RuntimeError(f"minimal plugin printed no handshake line: {argv}")
        credentials = None
        if identity is not None:
            cert = fields[5] + "=" * (-len(fields[5]) % 4)
            credentials = mtls_credentials(cert, identity)
        channel = raw_channel(fields[2], fields[3], credentials)
        marks.append(time.perf_counter())
        echo_pb2_grpc.EchoStub(channel).Echo(request, timeout=30, wait_for_ready=True)
        marks.append(time.perf_counter())
        channel.close()
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# --- pyvider-rpcplugin ---------------------------------------------------------------------


class PyviderUnavailable(RuntimeError):
    """pyvider-rpcplugin is not installed, or its host failed; the column shows n/a."""


class PyviderWorker:
    """pyvider_echo/worker.py: one JSON command per line in, one JSON reply per line out."""

    def __init__(self) -> None:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        env = clean_environ({"PYTHONUNBUFFERED": "1"})
        self.proc = subprocess.Popen(
            [*PYVIDER_WORKER],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        hello = self._read()
        if not hello.get("ok"):
            self.close()
            raise PyviderUnavailable(hello.get("error", "worker failed"))
        self.version = str(hello.get("version", "?"))

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise PyviderUnavailable(f"pyvider worker exited: {self.log_tail()}")
        result: dict[str, Any] = json.loads(line)
        return result

    def log_tail(self, lines: int = 15) -> str:
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        if not reply.get("ok"):
            raise PyviderUnavailable(f"{op}: {reply.get('error')}")
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()

    def __enter__(self) -> PyviderWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def pyvider_worker() -> Generator[PyviderWorker, None, None]:
    worker = PyviderWorker()
    try:
        yield worker
    finally:
        worker.close()
