"""Every code snippet in README.md and docs/ runs, in a fresh interpreter (see snippets.py)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from snippets import FILE_MARKER, run_document, snippets

REPO = Path(__file__).resolve().parents[2]
# As in tests/interop: set in CI, where a missing Go fails instead of skipping.
REQUIRE_ENV = "PYVIDER_REQUIRE_INTEROP"
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_snippets_run(document: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if document.name == "go.md":
        _place_go_programs(tmp_path, request.getfixturevalue("go_programs"))
    if document.name == "terraform.md":
        _place_providers(tmp_path)
    failures = run_document(document, tmp_path)
    assert not failures, failures[0]


@pytest.fixture(scope="session")
def go_programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """go.md runs the repository's Go KV hosts and plugins, built as in the interop suite
    (which decides when Go may be missing): tests/interop/go with Debian's go-plugin 1.0.1,
    tests/interop/go18 as a Go module with go-plugin 1.8.0."""
    sys.path.insert(0, str(REPO / "tests" / "interop"))
    from gobuild import GoBuildError, build_go_binaries, go_available
    from gomodules import GoModuleError, build_go18

    reason = go_available()
    if reason is not None:
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail(f"{REQUIRE_ENV}=1 but Go is unavailable for docs/go.md: {reason}")
        pytest.skip(reason)
    try:
        programs = build_go_binaries(tmp_path_factory.mktemp("gobin"))
        programs.update(build_go18(tmp_path_factory.mktemp("go18bin")))
    except (GoBuildError, GoModuleError) as exc:
        pytest.fail(f"building the Go programs of docs/go.md failed: {exc}")
    return programs


GO_PROGRAM_NAMES = {
    "kv-host": "kvhost",
    "kv-plugin": "kvplugin",
    "kv-host-18": "kvhost18",
    "kv-plugin-18": "kvplugin18",
}


def _place_providers(workdir: Path) -> None:
    """terraform.md drives HashiCorp's random provider, as make interop-deps builds it."""
    sys.path.insert(0, str(REPO / "tests" / "interop"))
    from interop_tools import require_tool

    shutil.copy2(require_tool("terraform-provider-random"), workdir / "terraform-provider-random")


def _place_go_programs(workdir: Path, programs: dict[str, Path]) -> None:
    for name, program in GO_PROGRAM_NAMES.items():
        shutil.copy2(programs[program], workdir / name)


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
