"""One fresh host process for the RSS benchmark: start a plugin, 200 echo calls, measure.

    python benchmarks/_rss_probe.py ours|raw|pyvider

Prints one JSON line: ``host_kib`` (this process's VmRSS after the calls),
``host_base_kib`` (after the imports, before starting the plugin) and
``plugin_kib`` (the plugin or server process's VmRSS after the calls).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CALLS = 200


def ours() -> dict[str, Any]:
    from benchmarks._targets import our_plugin, vm_rss_kib
    from pyvider_rpcplugin_sync.examples import echo_pb2

    base = vm_rss_kib()
    with our_plugin("unix", False) as plugin:
        request = echo_pb2.EchoRequest(payload=b"x" * 64)
        for _ in range(CALLS):
            plugin.stub.Echo(request)
        assert plugin.pid is not None
        return {
            "host_base_kib": base,
            "host_kib": vm_rss_kib(),
            "plugin_kib": vm_rss_kib(plugin.pid),
        }


def raw() -> dict[str, Any]:
    from benchmarks._targets import RawServer, vm_rss_kib
    from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

    base = vm_rss_kib()
    with RawServer("unix", False) as server:
        channel = server.channel()
        stub = echo_pb2_grpc.EchoStub(channel)
        request = echo_pb2.EchoRequest(payload=b"x" * 64)
        for _ in range(CALLS):
            stub.Echo(request, wait_for_ready=True)
        result = {
            "host_base_kib": base,
            "host_kib": vm_rss_kib(),
            "plugin_kib": vm_rss_kib(server.pid),
        }
        channel.close()
        return result


def pyvider() -> dict[str, Any]:
    import asyncio

    from pyvider.rpcplugin import configure, plugin_client

    from benchmarks._targets import PYVIDER_PLUGIN, vm_rss_kib
    from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

    base = vm_rss_kib()

    async def main() -> dict[str, Any]:
        configure(auto_mtls=False)
        async with plugin_client(command=[*PYVIDER_PLUGIN, "--transport", "unix"]) as client:
            assert client.grpc_channel is not None  # connected
            stub = echo_pb2_grpc.EchoStub(client.grpc_channel)
            request = echo_pb2.EchoRequest(payload=b"x" * 64)
            for _ in range(CALLS):
                await stub.Echo(request)
            popen = getattr(getattr(client, "_process", None), "process", None)  # observed only
            pid = getattr(popen, "pid", None)
            endpoint = client.target_endpoint or ""
            result = {
                "host_base_kib": base,
                "host_kib": vm_rss_kib(),
                "plugin_kib": vm_rss_kib(pid) if pid else None,
            }
        if endpoint.startswith("unix:"):  # pyvider can leave its socket file behind
            Path(endpoint.removeprefix("unix:")).unlink(missing_ok=True)
        return result

    return asyncio.run(main())


if __name__ == "__main__":
    which = sys.argv[1]
    result = {"ours": ours, "raw": raw, "pyvider": pyvider}[which]()
    print(json.dumps(result), flush=True)
