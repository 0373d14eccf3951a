"""Check results, the summary table and the ``--json`` document (no I/O)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "skip", "info"]

#: The exit codes of ``conformance plugin`` and ``conformance host``.
EXIT_OK = 0  # every required check passed
EXIT_FAILED = 1  # a required check failed
EXIT_USAGE = 2  # bad command line
EXIT_NOT_RUN = 3  # the kit could not run the battery (command missing, no handshake at all)


@dataclass(frozen=True)
class Result:
    """The outcome of one check.

    ``check`` is a stable dotted name (``handshake.line``), ``expect`` says in a
    few words what a conforming peer does, ``observed`` what this one did, and
    ``hint`` (failures only) how to fix it. An optional check (``required=False``)
    never changes the exit code.
    """

    check: str
    expect: str
    status: Status
    observed: str = ""
    hint: str = ""
    required: bool = True

    @property
    def failed_required(self) -> bool:
        return self.status == "fail" and self.required


def passed(check: str, expect: str, observed: str = "", *, required: bool = True) -> Result:
    return Result(check, expect, "pass", observed, "", required)


def failed(check: str, expect: str, observed: str, hint: str, *, required: bool = True) -> Result:
    return Result(check, expect, "fail", observed, hint, required)


def skipped(check: str, expect: str, why: str, *, required: bool = True) -> Result:
    return Result(check, expect, "skip", why, "", required)


def judged(
    check: str, expect: str, ok: bool, observed: str, hint: str, *, required: bool = True
) -> Result:
    """``passed`` when ``ok``, else ``failed`` with ``hint``."""
    if ok:
        return passed(check, expect, observed, required=required)
    return failed(check, expect, observed, hint, required=required)


@dataclass
class Report:
    """Every result of one run, in the order the checks ran."""

    kind: Literal["plugin", "host"]
    command: Sequence[str]
    results: list[Result] = field(default_factory=list[Result])
    facts: dict[str, Any] = field(default_factory=dict[str, Any])
    seconds: float = 0.0

    def add(self, result: Result) -> None:
        self.results.append(result)

    def status_of(self, check: str) -> Status | None:
        for result in self.results:
            if result.check == check:
                return result.status
        return None

    @property
    def ok(self) -> bool:
        return not any(result.failed_required for result in self.results)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_FAILED

    def counts(self) -> dict[str, int]:
        counts = {"pass": 0, "fail": 0, "optional_fail": 0, "skip": 0, "info": 0}
        for result in self.results:
            if result.status == "fail" and not result.required:
                counts["optional_fail"] += 1
            else:
                counts[result.status] += 1
        return counts

    def to_json(self) -> str:
        document = {
            "kind": self.kind,
            "command": list(self.command),
            "ok": self.ok,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "counts": self.counts(),
            "facts": self.facts,
            "results": [asdict(result) for result in self.results],
        }
        return json.dumps(document, indent=2, sort_keys=False)

    def to_table(self) -> str:
        """A fixed-width table (check, expectation, result, hint) and a summary line."""
        rows = [("CHECK", "EXPECTATION", "RESULT", "OBSERVED / HINT")]
        for r in self.results:
            label = r.status.upper() if r.required or r.status != "fail" else "FAIL (optional)"
            if not r.required and r.status == "pass":
                label = "PASS (optional)"
            detail = r.observed if not r.hint else f"{r.observed}; hint: {r.hint}"
            rows.append((r.check, r.expect, label, detail))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [
            "  ".join(
                [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2]), row[3]]
            ).rstrip()
            for row in rows
        ]
        c = self.counts()
        verdict = "conforms" if self.ok else "does NOT conform"
        lines.append("")
        lines.append(
            f"{self.kind} {verdict}: {c['pass']} passed, {c['fail']} failed, "
            f"{c['optional_fail']} optional failed, {c['skip']} skipped, {c['info']} noted "
            f"in {self.seconds:.1f} s"
        )
        return "\n".join(lines)
