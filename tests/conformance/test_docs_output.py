"""The failing plugin's output shown in docs/conformance.md is what the kit prints today."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)
PAGE = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"
SECONDS = re.compile(r" in \d+\.\d s$", re.M)


def test_the_failing_plugins_table_is_current(tmp_path: Path, marker: str) -> None:
    text = PAGE.read_text()
    plugin = re.search(r"<!-- file: noisy_plugin.py -->\n.*?```python\n(.*?)```", text, re.S)
    assert plugin is not None
    (tmp_path / "noisy_plugin.py").write_text(plugin[1])
    shown = [block for block in re.findall(r"```text\n(.*?)```", text, re.S) if "noisy" in block]
    assert len(shown) == 1
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyvider_rpcplugin_sync",
            "conformance",
            "plugin",
            "--",
            sys.executable,
            "noisy_plugin.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert SECONDS.sub("", done.stdout.strip()) == SECONDS.sub("", shown[0].strip())
