"""Run the code snippets of a Markdown document, as the docs promise they run.

- A block right after ``<!-- file: NAME -->`` (and the caption line that shows NAME
  to readers, ``**`NAME`**``) is written to NAME in the scratch directory: a plugin,
  a ``.proto`` or a test file that later snippets use.
- Every other ``python`` block is run there by ``python -c`` and must exit 0.
- A ``sh`` block right after ``<!-- run -->`` is run there by bash (with the Python's
  ``bin`` directory first on PATH) and must exit 0; other shell blocks are only shown.

Used by tests/docs/test_snippets.py, and by .ci/wheel-check to follow the tutorial
with the installed wheel: ``python tests/docs/snippets.py --python VENV/bin/python DOC.md``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

BLOCK = re.compile(
    r"(?:<!-- (?:file: (?P<file>[\w./-]+)|(?P<run>run)) -->\n"
    r"(?:\*\*`(?P<caption>[\w./-]+)`\*\*\n\n)?)?"
    r"```(?P<lang>[\w-]*)\n(?P<code>.*?)```",
    re.S,
)
FILE_MARKER = re.compile(r"<!-- file: ([\w./-]+) -->\n(.*)\n")
SNIPPET_TIMEOUT = 120


@dataclass(frozen=True)
class Snippet:
    lang: str
    code: str
    file: str | None = None
    run: bool = False


def snippets(document: Path) -> list[Snippet]:
    return [
        Snippet(m["lang"], m["code"], m["file"], m["run"] is not None)
        for m in BLOCK.finditer(document.read_text())
    ]


def environment(workdir: Path, python: str) -> dict[str, str]:
    bin_dir = str(Path(python).parent)
    return {
        **os.environ,
        "PYTHONPATH": str(workdir),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        # The KV example keeps its values under the user's state directory: not ours.
        "XDG_STATE_HOME": str(workdir / "state"),
    }


def run_document(document: Path, workdir: Path, python: str = sys.executable) -> list[str]:
    """Run ``document``'s snippets in ``workdir``; a report for each one that failed
    (the first failure ends the run: later snippets build on earlier ones)."""
    env = environment(workdir, python)
    for index, snippet in enumerate(snippets(document)):
        if snippet.file:
            target = workdir / snippet.file
            if workdir.resolve() not in target.resolve().parents:
                return [f"{document.name}: {snippet.file} leaves the scratch directory"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(snippet.code)
            continue
        if snippet.run and snippet.lang == "sh":
            argv = ["bash", "-euo", "pipefail", "-c", snippet.code]
        elif snippet.lang == "python" and not snippet.run:
            argv = [python, "-c", snippet.code]
        elif snippet.run:
            return [f"{document.name}: only sh blocks can be marked run"]
        else:
            continue
        result = subprocess.run(
            argv,
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=SNIPPET_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            return [
                f"{document.name} snippet {index + 1} failed (exit {result.returncode}):\n"
                f"{snippet.code}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n"
                f"{result.stderr}"
            ]
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the Python that runs them")
    parser.add_argument("documents", nargs="+", type=Path)
    args = parser.parse_args()
    failures = []
    for document in args.documents:
        with tempfile.TemporaryDirectory(prefix="doc-snippets-") as workdir:
            failures += run_document(document.resolve(), Path(workdir), args.python)
        print(f"{document}: {'FAILED' if failures else 'ok'}")
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
