"""The benchmark runner's machinery (``benchmarks/``), without timing anything.

Ratios, budgets and their gross-regression lines, the fine-grained alternation,
the table, the parsing of bench_tls's output, the confirmation re-run of a
gross result and the runner's exit status, all with fake measurements.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` run without `python -m`
    sys.path.insert(0, str(ROOT))

from benchmarks import __main__ as runner  # noqa: E402
from benchmarks._common import (  # noqa: E402
    CYCLE_BUDGET,
    GROSS,
    IMPORT_BUDGET,
    MET,
    MISSED,
    QUICK,
    STREAM_BUDGET,
    THREADS_BUDGET,
    TLS_BRIDGE_BUDGET,
    UNARY_BUDGET,
    Row,
    Stat,
    alternate,
    alternation_row,
    compare,
    gross_failures,
    interleave,
    merge,
    na_row,
    paired_ratios,
)
from benchmarks._report import COLUMNS, format_markdown, format_table  # noqa: E402

# --- statistics and budgets ----------------------------------------------------------------


def test_stat_of_is_median_min_max() -> None:
    assert Stat.of([3.0, 1.0, 2.0, 10.0]) == Stat(2.5, 1.0, 10.0, 4)
    with pytest.raises(ValueError):
        Stat.of([])


def test_paired_ratios_pair_blocks_in_order() -> None:
    assert paired_ratios([2.0, 3.0], [1.0, 4.0]) == [2.0, 0.75]
    with pytest.raises(ValueError):
        paired_ratios([1.0], [1.0, 2.0])


@pytest.mark.parametrize(
    ("budget", "value", "verdict"),
    [
        (UNARY_BUDGET, 0.97, MET),
        (UNARY_BUDGET, 1.20, MET),
        (UNARY_BUDGET, 0.96, MISSED),
        (UNARY_BUDGET, 0.85, MISSED),  # noise territory: reported, never fatal
        (UNARY_BUDGET, 0.849, GROSS),
        (THREADS_BUDGET, 0.94, MISSED),
        (STREAM_BUDGET, 0.84, GROSS),
        (TLS_BRIDGE_BUDGET, 0.90, MET),
        (TLS_BRIDGE_BUDGET, 0.75, MISSED),
        (TLS_BRIDGE_BUDGET, 0.69, MISSED),
        (TLS_BRIDGE_BUDGET, 0.59, GROSS),
        (CYCLE_BUDGET, 1.10, MET),
        (CYCLE_BUDGET, 1.49, MISSED),
        (CYCLE_BUDGET, 1.76, GROSS),
        (IMPORT_BUDGET, -80.0, MET),
        (IMPORT_BUDGET, 25.0, MISSED),
    ],
)
def test_budget_verdicts(budget: Any, value: float, verdict: str) -> None:
    assert budget.verdict(value) == verdict


def test_gross_lines_are_the_documented_ones() -> None:
    assert (UNARY_BUDGET.gross, THREADS_BUDGET.gross, STREAM_BUDGET.gross) == (0.85, 0.85, 0.85)
    assert TLS_BRIDGE_BUDGET.gross == 0.6
    assert CYCLE_BUDGET.gross == 1.75


def test_compare_scores_paired_ratios_and_deltas() -> None:
    row = compare("k", "t", "calls/s", [90, 100, 110], [100, 100, 100], budget=UNARY_BUDGET)
    assert row.score == Stat(1.0, 0.9, 1.1, 3)
    assert row.verdict == MET
    delta = compare("i", "t", "ms", [105, 100], [100, 95], kind="delta", budget=IMPORT_BUDGET)
    assert delta.score is not None and delta.score.median == 5.0
    with_pyvider = compare("k", "t", "ms", [1, 1], [2, 2], pyvider=[4], same=[1, 2])
    assert with_pyvider.pyvider_score == Stat(2.0, 2.0, 2.0, 1)  # paired with raw's first
    assert with_pyvider.host_path == Stat(0.75, 0.5, 1.0, 2)


# --- interleaving --------------------------------------------------------------------------


def test_interleave_rotates_the_order_each_block() -> None:
    order: list[str] = []

    def block(name: str) -> Any:
        return lambda: order.append(name) or 1.0

    results = interleave({n: block(n) for n in "abc"}, blocks=3, warmup=1)
    assert order == list("abc" + "abc" + "bca" + "cab")
    assert results == {n: [1.0, 1.0, 1.0] for n in "abc"}


def test_alternate_pairs_back_to_back_chunks() -> None:
    """Ours takes 1.25x raw's time per call: the ratio is 0.8 in every round."""
    seen: list[tuple[str, int]] = []

    def fake(name: str, per_call: float) -> Any:
        def run(n: int) -> float:
            seen.append((name, n))
            return n * per_call

        return run

    variants = {"ours": fake("ours", 1.25e-3), "raw": fake("raw", 1e-3)}
    alt = alternate(variants, "raw", chunk=4, rounds=5, blocks=2, warmup_rounds=1)
    assert {n for _, n in seen} == {4}
    assert len(seen) == 2 * (1 + 5 * 2)
    assert alt.pair_ratios["ours"] == pytest.approx([0.8] * 10)
    assert alt.score("ours") == pytest.approx(Stat(0.8, 0.8, 0.8, 2))
    assert alt.rates["raw"] == pytest.approx([1000.0, 1000.0])
    merged = merge([alt, alt])
    assert len(merged.pair_ratios["ours"]) == 20 and len(merged.rates["ours"]) == 4
    row = alternation_row("u", "unary", merged, budget=UNARY_BUDGET)
    assert row.verdict == GROSS and row.ours is not None and row.ours.median == 800.0


# --- table -----------------------------------------------------------------------------------


def sample_rows() -> list[Row]:
    unary = compare("u", "unary 64 B", "calls/s", [970, 980], [1000, 1000], budget=UNARY_BUDGET)
    cycle = compare("c", "cycle", "ms", [180, 190], [100, 100], budget=CYCLE_BUDGET)
    return [unary, cycle, na_row("t", "tls", "calls/s", "no bridge", TLS_BRIDGE_BUDGET)]


def test_table_has_every_column_and_the_notes() -> None:
    text = format_table(sample_rows())
    lines = text.splitlines()
    for column in COLUMNS:
        assert column in lines[0]
    assert lines[1].startswith("---")
    assert "0.975x (0.97-0.98)" in text and ">= 0.97x met" in text
    assert "1.850x (1.80-1.90)" in text and "<= 1.10x GROSS" in text
    assert "n/a: no bridge" in text  # the reason for an n/a is printed
    markdown = format_markdown(sample_rows())
    assert markdown.count("\n") == 2 + 3 - 1 and markdown.startswith("| benchmark |")


def test_gross_failures_are_only_gross() -> None:
    assert [r.key for r in gross_failures(sample_rows())] == ["c"]


# --- bench_tls output -------------------------------------------------------------------------

TLS_OUTPUT = """\
64 B payload, 200 calls per block
  variant       calls/s         min-max  x native  per-block ratio: median (min-max)
  plain           1,293   1,286-1,526      1.081x  1.075 (1.065-1.230)
  native          1,196   1,051-1,432      1.000x  1.000 (1.000-1.000)
  bridged           912     859-962        0.763x  0.805 (0.637-0.817)

1 MiB payload, 1 calls per block
  variant       calls/s         min-max  x native  per-block ratio: median (min-max)
  native            106     104-110        1.000x  1.000 (1.000-1.000)
  bridged            78      77-81         0.738x  0.738 (0.712-0.769)

budget: bridged >= 0.80x native at 64 B: 0.763x ratio of medians
"""


def test_parse_tls_rows_reads_both_sections() -> None:
    from benchmarks._external import parse_tls_rows

    rows = {row.key: row for row in parse_tls_rows(TLS_OUTPUT)}
    big = rows["tls_bridge_1mib"]
    assert big.score is not None and (big.score.median, big.score.high) == (0.738, 0.769)
    assert big.verdict == MISSED  # 0.738 against >= 0.80x
    # Variants the output lacks give no row, except the budget rows (n/a).
    assert "tls_plugin_bridge" not in rows
    assert [r.key for r in parse_tls_rows("nothing")] == ["tls_bridge", "tls_bridge_1mib"]


def test_parse_tls_output_reads_the_64_byte_section() -> None:
    from benchmarks._external import parse_tls_output

    row = parse_tls_output(TLS_OUTPUT)
    assert row.ours is not None and row.ours.median == 912
    assert row.raw is not None and row.raw.median == 1196
    assert row.score is not None and (row.score.median, row.score.low) == (0.805, 0.637)
    assert row.verdict == MISSED  # 0.805 against >= 0.90x
    broken = parse_tls_output("something else entirely")
    assert broken.score is None and broken.note.startswith("n/a")


# --- the runner -------------------------------------------------------------------------------


class FakeSession:
    def __init__(self, reruns: list[list[Row]]) -> None:
        self.reruns = reruns

    def run(self, name: str) -> list[Row]:
        return self.reruns.pop(0)


def unary_row(score: float) -> Row:
    return compare("u", "unary", "calls/s", [score * 1000], [1000], budget=UNARY_BUDGET)


def test_a_gross_result_needs_a_second_gross_run() -> None:
    first = [unary_row(0.5)]
    kept = runner.confirm_gross(FakeSession([[unary_row(0.99)]]), "unary", first)  # type: ignore[arg-type]
    assert kept[0].verdict == MET and "not confirmed" in kept[0].note
    again = runner.confirm_gross(FakeSession([[unary_row(0.6)]]), "unary", first)  # type: ignore[arg-type]
    assert again[0].verdict == GROSS and "gross in two runs" in again[0].note
    fine = [unary_row(0.9)]
    assert runner.confirm_gross(FakeSession([]), "unary", fine) is fine  # type: ignore[arg-type]


def fake_benches(scores: list[float]) -> Any:
    calls = itertools.count()

    def bench(settings: Any, pyvider: Any) -> list[Row]:
        return [unary_row(scores[min(next(calls), len(scores) - 1)])]

    return lambda name: bench


@pytest.mark.parametrize(
    ("scores", "status"),
    [([0.96], 0), ([0.5, 0.99], 0), ([0.5, 0.5], 1)],
)
def test_quick_mode_exit_status(
    scores: list[float], status: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "bench_function", fake_benches(scores))
    monkeypatch.setattr(runner, "compile_bytecode", lambda: None)
    monkeypatch.setattr("benchmarks._targets.scrub_environ", lambda: None)
    argv = ["--quick", "--only", "unary", "--out", str(tmp_path), "--no-plot"]
    assert runner.main(argv) == status
    document = json.loads((tmp_path / "latest.json").read_text())
    assert document["mode"] == "quick" and document["rows"][0]["key"] == "u"
    assert document["gross"] == (["u"] if status else [])
    assert (tmp_path / "latest.md").read_text().count("| unary |") == 1


def test_full_mode_reports_gross_results_without_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "bench_function", fake_benches([0.5, 0.5]))
    monkeypatch.setattr(runner, "compile_bytecode", lambda: None)
    monkeypatch.setattr("benchmarks._targets.scrub_environ", lambda: None)
    argv = ["--only", "unary", "--out", str(tmp_path), "--no-plot", "--no-pyvider"]
    assert runner.main(argv) == 0
    assert json.loads((tmp_path / "latest.json").read_text())["gross"] == ["u"]


def test_quick_mode_is_small() -> None:
    assert QUICK.quick and not QUICK.pyvider
    assert QUICK.blocks >= 3  # a median needs a few blocks
    assert "rss" in runner.QUICK_SKIPS
    args = runner.parse_args(["--quick"])
    assert "rss" not in args.names and "unary" in args.names
    with pytest.raises(SystemExit):
        runner.parse_args(["--only", "nonsense"])
