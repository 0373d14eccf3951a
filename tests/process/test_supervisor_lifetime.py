"""The supervisor lives while the host has plugins running, and not a moment longer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from host_death import kill_host_and_measure
from process_helpers import KV

pytestmark = pytest.mark.timeout(90)

CLOSING_HOST = Path(__file__).parents[1] / "support" / "closing_host.py"
SUPERVISOR = "supervisor_main.py"


def programs(children: dict[str, str]) -> list[str]:
    return sorted(children.values())


def test_no_child_of_the_host_remains_after_its_last_plugin_closed() -> None:
    done = subprocess.run(
        [sys.executable, str(CLOSING_HOST), json.dumps(KV)],
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout)
    assert steps["before"] == {}
    for running, plugins in (
        ("one running", 1),
        ("two running", 2),
        ("one closed, one running", 1),
        ("a new one running", 1),
        ("shared running", 1),
    ):
        found = programs(steps[running])
        # One supervisor however many plugins run, beside the plugins themselves; alive
        # (sleeping or, caught at work, running), never a zombie.
        supervisors = [p for p in found if p.startswith(SUPERVISOR)]
        assert len(supervisors) == 1, (running, found)
        assert supervisors[0].split()[-1] in ("S", "R"), (running, found)
        assert len(found) == plugins + 1, (running, found)
    for closed in ("all closed", "it closed too", "shared closed"):
        assert steps[closed] == {}, (closed, steps[closed])  # no plugin, supervisor or zombie


def test_a_supervisor_started_again_still_cleans_up_after_the_hosts_death() -> None:
    outcome = kill_host_and_measure([KV], tls=False, close_one_first=True)
    assert outcome["survivors"] == []
    assert outcome["running_in_groups"] == []
    assert outcome["dirs_left"] == []
    assert outcome["other_dirs"] == []
