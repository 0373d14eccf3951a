"""Every Python snippet in README.md and docs/*.md runs, in a fresh interpreter.

A block right after ``<!-- file: NAME -->`` is written to NAME in the
document's scratch directory (a plugin that later snippets start); every
other ``python`` block is run there and must exit 0.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- file: (?P<file>[\w.]+) -->\n)?```python\n(?P<code>.*?)```", re.S)

pytestmark = pytest.mark.timeout(120)


def snippets(document: Path) -> list[tuple[str | None, str]]:
    return [(m["file"], m["code"]) for m in BLOCK.finditer(document.read_text())]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_python_snippets_run(document: Path, tmp_path: Path) -> None:
    blocks = snippets(document)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    for index, (filename, code) in enumerate(blocks):
        if filename:
            (tmp_path / filename).write_text(code)
            continue
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert result.returncode == 0, (
            f"{document.name} snippet {index + 1} failed:\n{code}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )


def test_every_document_is_checked() -> None:
    assert (REPO / "docs" / "plugin.md") in DOCUMENTS
    assert any(snippets(d) for d in DOCUMENTS)
