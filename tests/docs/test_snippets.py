"""Every code snippet in README.md and docs/ runs, in a fresh interpreter (see snippets.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from snippets import FILE_MARKER, run_document, snippets

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_snippets_run(document: Path, tmp_path: Path) -> None:
    failures = run_document(document, tmp_path)
    assert not failures, failures[0]


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


def test_a_failing_snippet_is_reported(tmp_path: Path) -> None:
    document = tmp_path / "broken.md"
    document.write_text(
        "<!-- file: m.py -->\n**`m.py`**\n\n```python\nX = 1\n```\n\n"
        "```python\nimport m\nassert m.X == 2\n```\n"
    )
    failures = run_document(document, tmp_path / "work")
    assert len(failures) == 1 and "AssertionError" in failures[0]
