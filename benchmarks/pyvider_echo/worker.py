"""A pyvider-rpcplugin 0.5.x host (its asyncio ``plugin_client``), driven line by line.

The benchmark runner keeps this process alive and sends one JSON command per
line on stdin; each reply is one JSON line on stdout (``ok``, then results).
Timings are taken here, around the awaited calls, as the runner takes its own.
Configuration goes through pyvider's ``configure()``, as its docs show.

Commands: ``open`` (transport, tls) starts pyvider's plugin with pyvider's client;
``unary`` (payload, calls); ``stream`` (count, payload); ``rss``; ``close``;
``cycle`` (transport, tls): plugin_client -> start -> first Echo reply -> shutdown,
exactly ``async with plugin_client(...)``.

    python benchmarks/pyvider_echo/worker.py   (then JSON lines on stdin)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PLUGIN = [sys.executable, str(HERE / "plugin.py")]


def plugin_cmd(transport: str, tls: bool) -> list[str]:
    # --verify-host-cert: pyvider's plugin then requires and verifies the host's
    # certificate (mutual TLS, as ours does); without it pyvider serves TLS only.
    return [*PLUGIN, "--transport", transport, *(["--verify-host-cert"] if tls else [])]


def vm_rss_kib(pid: int | str = "self") -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def remove_socket(endpoint: str | None) -> None:
    """pyvider's plugin can leave its unix socket file behind; the benchmark leaves nothing."""
    if endpoint and endpoint.startswith("unix:"):
        Path(endpoint.removeprefix("unix:")).unlink(missing_ok=True)


class Host:
    def __init__(self) -> None:
        from pyvider.rpcplugin import configure, plugin_client

        from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

        self.configure, self.plugin_client = configure, plugin_client
        self.pb2, self.grpc_mod = echo_pb2, echo_pb2_grpc
        self.client: Any = None
        self.stub: Any = None

    async def _start(self, transport: str, tls: bool) -> Any:
        self.configure(auto_mtls=tls)
        client = self.plugin_client(command=plugin_cmd(transport, tls))
        await client.start()
        return client

    async def open(self, transport: str, tls: bool) -> dict[str, Any]:
        self.client = await self._start(transport, tls)
        self.stub = self.grpc_mod.EchoStub(self.client.grpc_channel)
        await self.stub.Echo(self.pb2.EchoRequest(payload=b"warm"))
        return {"endpoint": self.client.target_endpoint}

    async def unary(self, payload: int, calls: int) -> dict[str, Any]:
        request = self.pb2.EchoRequest(payload=b"x" * payload)
        echo = self.stub.Echo
        begin = time.perf_counter()
        for _ in range(calls):
            await echo(request)
        return {"seconds": time.perf_counter() - begin}

    async def stream(self, count: int, payload: int) -> dict[str, Any]:
        request = self.pb2.StreamRequest(count=count, payload=b"x" * payload)
        received = 0
        begin = time.perf_counter()
        async for _ in self.stub.Stream(request):
            received += 1
        return {"seconds": time.perf_counter() - begin, "received": received}

    async def rss(self) -> dict[str, Any]:
        process = getattr(self.client, "_process", None)  # observed only (no public accessor)
        popen = getattr(process, "process", None)
        pid = getattr(popen, "pid", None)
        return {"host_kib": vm_rss_kib(), "plugin_kib": vm_rss_kib(pid) if pid else None}

    async def close(self) -> dict[str, Any]:
        if self.client is not None:
            client, self.client = self.client, None
            endpoint = client.target_endpoint
            await client.shutdown_plugin()
            await client.close()
            remove_socket(endpoint)
        return {}

    async def cycle(self, transport: str, tls: bool) -> dict[str, Any]:
        begin = time.perf_counter()
        self.configure(auto_mtls=tls)
        async with self.plugin_client(command=plugin_cmd(transport, tls)) as client:
            assert client.grpc_channel is not None  # connected
            stub = self.grpc_mod.EchoStub(client.grpc_channel)
            await stub.Echo(self.pb2.EchoRequest(payload=b"x" * 64))
            first = time.perf_counter() - begin
            endpoint = client.target_endpoint
        elapsed = time.perf_counter() - begin
        remove_socket(endpoint)
        return {"seconds": elapsed, "first_reply": first}


async def serve() -> None:
    loop = asyncio.get_running_loop()
    try:
        host = Host()
        from importlib import metadata

        version = metadata.version("pyvider-rpcplugin")
    except Exception as exc:
        emit({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return
    emit({"ok": True, "version": version})
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        command = json.loads(line)
        op = command.pop("op")
        try:
            result = await getattr(host, op)(**command)
        except Exception as exc:
            emit({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
            continue
        emit({"ok": True, **result})
    await host.close()


def emit(reply: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(serve())
