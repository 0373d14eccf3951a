"""A host killed with SIGKILL takes its plugins and their socket directories with it."""

from __future__ import annotations

import pytest
from host_death import DEADLINE, kill_host_and_measure
from process_helpers import KV

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("tls", [False, True])
def test_sigkill_of_the_host_leaves_nothing(tls: bool) -> None:
    outcome = kill_host_and_measure([KV, KV], tls=tls)
    assert outcome["survivors"] == []
    assert outcome["running_in_groups"] == []
    assert outcome["dirs_left"] == []
    assert outcome["other_dirs"] == []
    assert isinstance(outcome["plugins_gone_after"], float)
    assert outcome["plugins_gone_after"] < DEADLINE
