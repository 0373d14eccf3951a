"""go-plugin's KV service as a pyvider-rpcplugin 0.5.5 plugin (asyncio, ``grpc.aio``).

For interop tests: our sync host (``PluginProcess``) loads this plugin, which is
written only with pyvider-rpcplugin's public API (``RPCPluginServer``,
``plugin_server``, ``RPCPluginProtocol``) and serves ``proto.KV`` from our
generated ``pyvider_rpcplugin_sync._protos.kv_pb2_grpc`` (the generated
registration function accepts ``async def`` servicer methods on a ``grpc.aio``
server).

The handshake is pyvider's own: the magic cookie it expects comes from its
configuration, i.e. ``PLUGIN_MAGIC_COOKIE_KEY`` / ``PLUGIN_MAGIC_COOKIE_VALUE``
in the environment (defaults ``PLUGIN_MAGIC_COOKIE`` / ``test_cookie_value``),
or from ``--cookie-key`` / ``--cookie-value``, which set the same keys in the
server's ``config``. TLS follows pyvider's rules: plaintext unless the host
sends ``PLUGIN_CLIENT_CERT`` (AutoMTLS); then a generated ECDSA P-384
certificate and TLS **without** client-certificate verification, unless
``PLUGIN_CLIENT_ROOT_CERTS`` is configured. ``--verify-host-cert`` configures
it with the host's own ``PLUGIN_CLIENT_CERT``, which turns on full mutual TLS
through pyvider's public configuration. ``--no-auto-mtls`` sets
``PLUGIN_AUTO_MTLS=false`` (pyvider then serves plaintext even when asked for TLS).

Transport: ``--transport`` or ``PLUGIN_TRANSPORT`` (``unix``/``tcp``, our
library's variable) picks ``plugin_server(transport=...)``; otherwise pyvider
negotiates from its ``PLUGIN_SERVER_TRANSPORTS`` (unix first).

    PLUGIN_MAGIC_COOKIE=test_cookie_value python kv_plugin.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import grpc
from pyvider.rpcplugin import RPCPluginProtocol, RPCPluginServer, plugin_server

from pyvider_rpcplugin_sync._protos import kv_pb2, kv_pb2_grpc

SERVICE_NAME = "proto.KV"


class KVHandler(kv_pb2_grpc.KVServicer):
    """In-memory values; one event loop, so no lock."""

    def __init__(self) -> None:
        self._values: dict[str, bytes] = {}

    async def Put(self, request: kv_pb2.PutRequest, context: Any) -> kv_pb2.Empty:
        self._values[request.key] = request.value
        return kv_pb2.Empty()

    async def Get(self, request: kv_pb2.GetRequest, context: Any) -> kv_pb2.GetResponse:
        if request.key not in self._values:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no value for key {request.key!r}")
        return kv_pb2.GetResponse(value=self._values[request.key])


class KVProtocol(RPCPluginProtocol[Any, KVHandler]):
    """Registers proto.KV; declares the one app protocol version it serves."""

    service_name = SERVICE_NAME
    supported_protocol_versions = (1,)

    async def get_grpc_descriptors(self) -> tuple[Any, str]:
        return kv_pb2.DESCRIPTOR, SERVICE_NAME

    async def add_to_server(self, server: Any, handler: KVHandler) -> None:
        kv_pb2_grpc.add_KVServicer_to_server(handler, server)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cookie-key")
    parser.add_argument("--cookie-value")
    parser.add_argument("--transport", choices=("unix", "tcp"))
    parser.add_argument("--verify-host-cert", action="store_true")
    parser.add_argument("--no-auto-mtls", action="store_true")
    return parser.parse_args(argv)


def server_config(args: argparse.Namespace) -> dict[str, Any]:
    # A plugin program owns its process: exit with pyvider's exit codes even
    # when a test runner's PYTEST_CURRENT_TEST leaks into the environment
    # (pyvider then defaults to not exiting).
    config: dict[str, Any] = {"PLUGIN_EXIT_ON_STOP": True}
    if args.cookie_key:
        config["PLUGIN_MAGIC_COOKIE_KEY"] = args.cookie_key
    if args.cookie_value:
        config["PLUGIN_MAGIC_COOKIE_VALUE"] = args.cookie_value
    if args.no_auto_mtls:
        config["PLUGIN_AUTO_MTLS"] = False
    host_cert = os.environ.get("PLUGIN_CLIENT_CERT", "").strip()
    if args.verify_host_cert and host_cert:
        config["PLUGIN_CLIENT_ROOT_CERTS"] = host_cert
    return config


async def main(argv: list[str]) -> None:
    args = parse_args(argv)
    config = server_config(args)
    transport = args.transport or os.environ.get("PLUGIN_TRANSPORT") or None
    server: RPCPluginServer[Any, Any, Any]
    if transport:
        server = plugin_server(
            KVProtocol(),  # type: ignore[type-var]  # pyvider's TypeVar is narrower than its ABC
            KVHandler(),
            transport=transport,
            config=config,
        )
    else:
        server = RPCPluginServer(protocol=KVProtocol(), handler=KVHandler(), config=config)
    await server.serve()  # exits the process: 0 after a shutdown, 1 on a start-up fault


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
