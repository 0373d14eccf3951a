"""SIGKILL of a host: its Go plugins (which never watch their parent) go too, within 2 s."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from host_death import DEADLINE, kill_host_and_measure

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

PYTHON_KV = [sys.executable, "-m", "pyvider_rpcplugin_sync.examples.kv_plugin"]


@pytest.mark.parametrize("tls", [False, True])
def test_sigkill_of_the_host_stops_go_plugins_and_removes_their_sockets(
    go_bins: dict[str, Path], tls: bool
) -> None:
    go_kv = [str(go_bins["kvplugin"])]
    outcome = kill_host_and_measure([go_kv, go_kv, PYTHON_KV], tls=tls)
    assert outcome["survivors"] == []
    assert outcome["running_in_groups"] == []
    assert outcome["dirs_left"] == []
    assert outcome["other_dirs"] == []
    assert isinstance(outcome["plugins_gone_after"], float)
    assert outcome["plugins_gone_after"] < DEADLINE
