"""A host that opens and closes KV plugins and reports its own children at each step.

Usage: ``closing_host.py PLUGIN_CMD_JSON``. Prints one JSON object: step name ->
``{pid: "program state"}`` of every child of this process (zombies too, the
supervisor included, named ``supervisor_main.py``), read from /proc.
"""

from __future__ import annotations

import json
import os
import sys

from pyvider_rpcplugin_sync import HandshakeConfig, PluginProcess, SharedPlugin
from pyvider_rpcplugin_sync._protos import kv_pb2, kv_pb2_grpc

KV_HANDSHAKE = HandshakeConfig("BASIC_PLUGIN", "hello", (1,))
PUT = kv_pb2.PutRequest(key="k", value=b"v")


def children() -> dict[str, str]:
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                args = handle.read().split(b"\0")
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == os.getpid():
            supervisor = any(arg.endswith(b"/supervisor_main.py") for arg in args)
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            found[entry] = f"{'supervisor_main.py' if supervisor else comm} {state}"
    return found


def plugin(command: list[str], tls: bool) -> PluginProcess:
    return PluginProcess(command, handshake=KV_HANDSHAKE, stub=kv_pb2_grpc.KVStub, tls=tls)


def main(argv: list[str]) -> int:
    command = json.loads(argv[1])
    steps: dict[str, dict[str, str]] = {"before": children()}
    with plugin(command, tls=False) as first:
        first.stub.Put(PUT, timeout=30)
        steps["one running"] = children()
        with plugin(command, tls=True) as second:
            second.stub.Put(PUT, timeout=30)
            steps["two running"] = children()
        steps["one closed, one running"] = children()
    steps["all closed"] = children()
    with plugin(command, tls=True) as again:
        again.stub.Put(PUT, timeout=30)
        steps["a new one running"] = children()
    steps["it closed too"] = children()
    shared = SharedPlugin(command, handshake=KV_HANDSHAKE, stub=kv_pb2_grpc.KVStub)
    shared.stub.Put(PUT, timeout=30)
    steps["shared running"] = children()
    shared.close()
    steps["shared closed"] = children()
    print(json.dumps(steps), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
