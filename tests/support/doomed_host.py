"""A host that starts KV plugins, reports them on stdout as JSON, then waits to be killed.

Usage: ``doomed_host.py tls|plain[+close-one-first] PLUGIN_CMD_JSON...``; each
argument after the first is one plugin's argv as a JSON list. With
``+close-one-first`` the host first opens and closes the first plugin once. The
report: ``{"pids": [...], "groups": [...], "dirs": [...]}``, printed once every
plugin answered a call.
"""

from __future__ import annotations

import json
import os
import sys
import threading

from pyvider_rpcplugin_sync import HandshakeConfig, PluginProcess
from pyvider_rpcplugin_sync._protos import kv_pb2, kv_pb2_grpc

KV_HANDSHAKE = HandshakeConfig("BASIC_PLUGIN", "hello", (1,))


def main(argv: list[str]) -> int:
    mode, _, first = argv[1].partition("+")
    tls = mode == "tls"
    commands = [json.loads(command) for command in argv[2:]]
    if first == "close-one-first":
        with PluginProcess(commands[0], handshake=KV_HANDSHAKE, stub=kv_pb2_grpc.KVStub) as once:
            once.stub.Put(kv_pb2.PutRequest(key="k", value=b"v"), timeout=30)
    plugins = []
    for command in commands:
        plugin = PluginProcess(
            command, handshake=KV_HANDSHAKE, stub=kv_pb2_grpc.KVStub, tls=tls
        ).start()
        plugin.stub.Put(kv_pb2.PutRequest(key="k", value=b"v"), timeout=30)
        plugins.append(plugin)
    report = {
        "pids": [plugin.pid for plugin in plugins],
        "groups": [os.getpgid(plugin.pid or 0) for plugin in plugins],
        "dirs": [plugin._res.socket_dir for plugin in plugins],
    }
    print(json.dumps(report), flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
