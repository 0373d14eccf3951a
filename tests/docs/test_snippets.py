"""Every code snippet in README.md and docs/ runs, in a fresh interpreter.

- A block right after ``<!-- file: NAME -->`` (and the caption line that shows NAME
  to readers, ``**`NAME`**``) is written to NAME in the document's scratch
  directory: a plugin, a ``.proto`` or a test file that later snippets use.
- Every other ``python`` block is run there and must exit 0.
- A ``sh`` block right after ``<!-- run -->`` is run there by bash (with this
  interpreter's ``bin`` directory first on PATH) and must exit 0; other shell
  blocks are only shown.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
BLOCK = re.compile(
    r"(?:<!-- (?:file: (?P<file>[\w./-]+)|(?P<run>run)) -->\n"
    r"(?:\*\*`(?P<caption>[\w./-]+)`\*\*\n\n)?)?"
    r"```(?P<lang>[\w-]*)\n(?P<code>.*?)```",
    re.S,
)
FILE_MARKER = re.compile(r"<!-- file: ([\w./-]+) -->\n(.*)\n")

pytestmark = pytest.mark.timeout(180)


@dataclass(frozen=True)
class Snippet:
    lang: str
    code: str
    file: str | None = None
    run: bool = False


def snippets(document: Path) -> list[Snippet]:
    found = []
    for m in BLOCK.finditer(document.read_text()):
        found.append(Snippet(m["lang"], m["code"], m["file"], m["run"] is not None))
    return found


def _execute(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_snippets_run(document: Path, tmp_path: Path) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        # The KV example keeps its values under the user's state directory: not ours.
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    for index, snippet in enumerate(snippets(document)):
        if snippet.file:
            target = tmp_path / snippet.file
            assert tmp_path in target.resolve().parents, f"{snippet.file} leaves the scratch dir"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(snippet.code)
            continue
        if snippet.run and snippet.lang == "sh":
            result = _execute(["bash", "-euo", "pipefail", "-c", snippet.code], tmp_path, env)
        elif snippet.lang == "python" and not snippet.run:
            result = _execute([sys.executable, "-c", snippet.code], tmp_path, env)
        else:
            assert not snippet.run, f"{document.name}: only sh blocks can be marked run"
            continue
        assert result.returncode == 0, (
            f"{document.name} snippet {index + 1} failed:\n{snippet.code}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_file_names_are_visible(document: Path) -> None:
    # The HTML comment is invisible in rendered Markdown: a caption names the file.
    for name, next_line in FILE_MARKER.findall(document.read_text()):
        assert next_line == f"**`{name}`**", f"{document.name}: {name} needs its caption line"


def test_every_document_is_checked() -> None:
    assert (REPO / "docs" / "plugin.md") in DOCUMENTS
    assert (REPO / "docs" / "tutorial.md") in DOCUMENTS
    assert any(s.run for d in DOCUMENTS for s in snippets(d))
    assert any(s.file and s.lang != "python" for d in DOCUMENTS for s in snippets(d))
