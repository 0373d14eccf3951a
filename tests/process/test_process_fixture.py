"""The rpcplugin_process fixture, run in a fresh pytest (pytester): it closes what it
made and fails a test whose plugin leaves a process behind."""

from __future__ import annotations

import os
import sys
import uuid

import pytest

pytestmark = pytest.mark.timeout(90)

KV = f"[{sys.executable!r}, '-m', 'pyvider_rpcplugin_sync.examples.kv_plugin']"


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if marker.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def test_a_clean_plugin_passes_and_is_closed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        from pyvider_rpcplugin_sync._protos import kv_pb2, kv_pb2_grpc
        from pyvider_rpcplugin_sync.examples.kv_plugin import KV_HANDSHAKE

        def test_kv(rpcplugin_process):
            plugin = rpcplugin_process({KV}, handshake=KV_HANDSHAKE, stub=kv_pb2_grpc.KVStub)
            plugin.stub.Put(kv_pb2.PutRequest(key="k", value=b"v"), timeout=10)
            assert plugin.stub.Get(kv_pb2.GetRequest(key="k"), timeout=10).value == b"v"
            print("\\nPID", plugin.pid)
        """
    )
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    pid = int(next(line for line in result.outlines if line.startswith("PID ")).split()[1])
    assert not os.path.exists(f"/proc/{pid}")


def test_a_process_left_in_the_plugins_group_fails_the_test(pytester: pytest.Pytester) -> None:
    marker = f"{uuid.uuid4().int % 1000}.{os.getpid()}"  # a unique sleep duration
    leaky = (
        f"['sh', '-c', 'sleep {marker} </dev/null >/dev/null 2>&1 & "
        f"exec {sys.executable} -m pyvider_rpcplugin_sync.examples.kv_plugin']"
    )
    pytester.makepyfile(
        f"""
        from pyvider_rpcplugin_sync.examples.kv_plugin import KV_HANDSHAKE

        def test_leaky(rpcplugin_process):
            assert rpcplugin_process({leaky}, handshake=KV_HANDSHAKE).ping()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)  # the test passed, its teardown failed
    result.stdout.fnmatch_lines(["*plugin processes outlived their close*", "*(sleep)*"])
    assert processes_with(f"sleep {marker}") == []  # and the fixture killed it
