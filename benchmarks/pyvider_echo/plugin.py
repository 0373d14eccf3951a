"""The echo service as a pyvider-rpcplugin 0.5.x plugin (asyncio, ``grpc.aio``).

Written with pyvider's public API only (``RPCPluginServer``, ``plugin_server``,
``RPCPluginProtocol``), as its documentation shows; it serves the same
``Echo`` service (unary ``Echo`` and server-streaming ``Stream``) as our
example plugin, from our generated modules.

    python plugin.py [--transport unix|tcp] [--verify-host-cert]

``--verify-host-cert`` puts the host's ``PLUGIN_CLIENT_CERT`` into pyvider's
``PLUGIN_CLIENT_ROOT_CERTS``, which makes its AutoMTLS mutual (by default
pyvider's plugin does not verify the host's certificate).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from pyvider.rpcplugin import RPCPluginProtocol, RPCPluginServer, plugin_server

from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

SERVICE_NAME = "pyvider_rpcplugin_sync.echo.Echo"


class EchoHandler(echo_pb2_grpc.EchoServicer):
    async def Echo(self, request: echo_pb2.EchoRequest, context: Any) -> echo_pb2.EchoResponse:
        return echo_pb2.EchoResponse(payload=request.payload)

    async def Stream(
        self, request: echo_pb2.StreamRequest, context: Any
    ) -> AsyncIterator[echo_pb2.EchoResponse]:
        reply = echo_pb2.EchoResponse(payload=request.payload)
        for _ in range(request.count):
            yield reply


class EchoProtocol(RPCPluginProtocol[Any, EchoHandler]):
    service_name = SERVICE_NAME
    supported_protocol_versions = (1,)

    async def get_grpc_descriptors(self) -> tuple[Any, str]:
        return echo_pb2.DESCRIPTOR, SERVICE_NAME

    async def add_to_server(self, server: Any, handler: EchoHandler) -> None:
        echo_pb2_grpc.add_EchoServicer_to_server(handler, server)


def transport_server(transport: str, config: dict[str, Any]) -> RPCPluginServer[Any, Any, Any]:
    """plugin_server, typed: its server and transport type variables are not solvable
    from its arguments (pyvider-rpcplugin's typing), so pyright leaves them unknown."""
    return plugin_server(
        EchoProtocol(),  # type: ignore[type-var]
        EchoHandler(),
        transport=transport,
        config=config,
    )


async def main(argv: list[str]) -> None:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=("unix", "tcp"))
    parser.add_argument("--verify-host-cert", action="store_true")
    args = parser.parse_args(argv)
    config: dict[str, Any] = {"PLUGIN_EXIT_ON_STOP": True}
    host_cert = os.environ.get("PLUGIN_CLIENT_CERT", "").strip()
    if args.verify_host_cert and host_cert:
        config["PLUGIN_CLIENT_ROOT_CERTS"] = host_cert
    server: RPCPluginServer[Any, Any, Any]
    if args.transport:
        server = transport_server(args.transport, config)
    else:
        server = RPCPluginServer(protocol=EchoProtocol(), handler=EchoHandler(), config=config)
    await server.serve()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
