"""``python -m benchmarks.soak`` in miniature, so that the soak itself keeps working.

The real run (a million calls) is not in CI's time budget; this one checks the
machinery: kills and restarts, the error accounting, the samples and the verdicts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` run without `python -m`
    sys.path.insert(0, str(ROOT))

from benchmarks import soak  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def test_small_soak_passes_and_reports(tmp_path: Path) -> None:
    argv = ["--calls", "3000", "--threads", "8", "--kill-every", "1000", "--out", str(tmp_path)]
    assert soak.main(argv) == 0
    result = json.loads((tmp_path / "soak.json").read_text())
    assert result["kills"] == 2
    assert result["unexpected"] == []
    assert result["verdicts"]["ok"] is True
    assert result["samples"][-1]["calls"] == 3000
    assert len(result["segment_plugin_kib"]) == 2
