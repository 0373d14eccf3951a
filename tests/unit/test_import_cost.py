"""What importing the public API loads: only what a start needs, the rest on first use.

Each statement runs in a fresh interpreter, which reports the modules it loaded
beyond ``import grpc``'s. A module listed here as deferred that shows up fails the
test: the import time budget (``import grpc`` + 10 ms, benchmarks/bench_import.py)
depends on it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

PROBE = """
import json, sys
import grpc
before = set(sys.modules)
{statement}
print(json.dumps(sorted(set(sys.modules) - before)))
"""

# Loaded on first use, never by importing the API.
DEFERRED = (
    "google.protobuf",
    "grpc_health",
    "cryptography",
    "json",
    "datetime",
    "pyvider_rpcplugin_sync._broker",
    "pyvider_rpcplugin_sync._transport.tls",
    "pyvider_rpcplugin_sync._ratelimit.interceptors",
    "pyvider_rpcplugin_sync._protos",
    "pyvider_rpcplugin_sync._protocol.reattach",
)


def loaded_by(statement: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(statement=statement)],
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def deferred_in(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == d or m.startswith(d + ".") for d in DEFERRED)]


@pytest.mark.parametrize(
    "statement",
    [
        "import pyvider_rpcplugin_sync",
        "from pyvider_rpcplugin_sync import PluginProcess",
        "from pyvider_rpcplugin_sync import HostConfig, HandshakeConfig",
        "from pyvider_rpcplugin_sync import serve, run_plugin",
    ],
)
def test_the_api_imports_nothing_a_start_loads_on_first_use(statement: str) -> None:
    assert deferred_in(loaded_by(statement)) == []


def test_the_plugin_api_imports_no_server_until_serve_runs() -> None:
    loaded = loaded_by("from pyvider_rpcplugin_sync import serve")
    assert "pyvider_rpcplugin_sync._plugin.server" not in loaded
    assert "pyvider_rpcplugin_sync._services.stdio" not in loaded


def test_an_example_plugin_imports_its_own_protos_only() -> None:
    loaded = loaded_by("import pyvider_rpcplugin_sync.examples.kv_plugin")
    protos = sorted(m for m in loaded if m.startswith("pyvider_rpcplugin_sync._protos."))
    assert protos == [
        "pyvider_rpcplugin_sync._protos.kv_pb2",
        "pyvider_rpcplugin_sync._protos.kv_pb2_grpc",
    ]
    # Its protos need protobuf (and what protobuf imports); nothing else deferred comes.
    for_protos = set(loaded_by("import pyvider_rpcplugin_sync._protos.kv_pb2_grpc"))
    assert [m for m in deferred_in(loaded) if m not in for_protos] == []


def test_the_examples_package_still_offers_every_generated_module() -> None:
    loaded = loaded_by(
        "from pyvider_rpcplugin_sync.examples import echo_pb2, counter_pb2_grpc, kv_pb2\n"
        "assert echo_pb2.EchoRequest and counter_pb2_grpc and kv_pb2.PutRequest"
    )
    assert "pyvider_rpcplugin_sync._protos.echo_pb2" in loaded
    assert "pyvider_rpcplugin_sync._protos.kv_pb2_grpc" not in loaded
