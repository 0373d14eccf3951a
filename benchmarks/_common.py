"""Shared machinery of the benchmarks: settings, interleaved blocks, statistics, budgets
and the rows of the result table (printed by ``_report``).

Every comparison is ours against raw grpcio measured in the same run, in
blocks that alternate between the variants (rotating the order each block) so
that the machine's drift hits all of them alike. A row's score is the median
of paired ratios (ours / raw): per block (:func:`interleave`), or per round of
~20 ms chunks (:func:`alternate`, the unary echo), with the blocks' min-max.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pyvider_rpcplugin_sync._constants import Transport

# --- settings --------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How much to measure: ``FULL`` (a few minutes) or ``QUICK`` (CI, under 60 s)."""

    quick: bool
    blocks: int  # interleaved blocks per variant
    block_seconds: float  # target duration of one block per variant (calls are calibrated)
    chunk_seconds: float  # target duration of one chunk of calls in an alternation
    warmup_blocks: int
    payloads: tuple[int, ...]
    setups: tuple[tuple[Transport, bool], ...]  # (transport, tls) for the unary echo
    threads: tuple[int, ...]
    stream_count: int
    stream_reps: int
    pyvider_stream_reps: int
    cycle_reps: int
    import_reps: int
    rss_reps: int
    pyvider: bool = True
    tls_bridge_args: tuple[str, ...] = ()
    bucket_calls: int = 200_000


FULL = Settings(
    quick=False,
    blocks=7,
    block_seconds=0.2,
    chunk_seconds=0.02,
    warmup_blocks=1,
    payloads=(64, 1 << 20),
    setups=(("unix", False), ("unix", True), ("tcp", False), ("tcp", True)),
    threads=(8, 32),
    stream_count=100_000,
    stream_reps=3,
    pyvider_stream_reps=1,
    cycle_reps=11,
    import_reps=15,
    rss_reps=3,
    tls_bridge_args=("--blocks", "5", "--calls", "400", "--big-calls", "3"),
)

QUICK = Settings(
    quick=True,
    blocks=3,
    block_seconds=0.15,
    chunk_seconds=0.015,
    warmup_blocks=1,
    payloads=(64,),
    setups=(("unix", False), ("unix", True)),
    threads=(8,),
    stream_count=10_000,
    stream_reps=3,
    pyvider_stream_reps=0,
    cycle_reps=8,
    import_reps=5,
    rss_reps=0,
    pyvider=False,
    tls_bridge_args=("--blocks", "3", "--calls", "200", "--big-calls", "1"),
    bucket_calls=50_000,
)

# --- statistics --------------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    """Median and range of repeated measurements."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Stat:
        data = [float(v) for v in values]
        if not data:
            raise ValueError("no measurements")
        return cls(statistics.median(data), min(data), max(data), len(data))


def paired_ratios(ours: Sequence[float], raw: Sequence[float]) -> list[float]:
    """Per-block ``ours / raw`` (blocks measured back to back share the machine's state)."""
    return [a / b for a, b in zip(ours, raw, strict=True) if b]


def paired_deltas(ours: Sequence[float], raw: Sequence[float]) -> list[float]:
    return [a - b for a, b in zip(ours, raw, strict=True)]


def interleave(
    variants: Mapping[str, Callable[[], float]], blocks: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Run each variant's block ``blocks`` times, rotating the order every round.

    ``warmup`` untimed rounds first (connections, caches, the allocator).
    """
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    results: dict[str, list[float]] = {name: [] for name in names}
    for block in range(blocks):
        shift = block % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(variants[name]())
    return results


@dataclass
class Alternation:
    """Result of :func:`alternate`: per-block rates and the paired ratios to the reference."""

    rates: dict[str, list[float]]  # calls/s per block (calls / time spent in that block)
    pair_ratios: dict[str, list[float]]  # per round: reference time / variant time
    block_ratios: dict[str, list[float]]  # per block: median of its rounds' ratios

    def score(self, name: str) -> Stat:
        """Median over every round's paired ratio; min-max over the blocks' medians."""
        block = self.block_ratios[name]
        return Stat(statistics.median(self.pair_ratios[name]), min(block), max(block), len(block))


def merge(parts: Sequence[Alternation]) -> Alternation:
    """Blocks measured separately (e.g. each with fresh processes) as one alternation."""
    first = parts[0]
    merged = Alternation(
        {n: [] for n in first.rates},
        {n: [] for n in first.pair_ratios},
        {n: [] for n in first.block_ratios},
    )
    for part in parts:
        for target, source in (
            (merged.rates, part.rates),
            (merged.pair_ratios, part.pair_ratios),
            (merged.block_ratios, part.block_ratios),
        ):
            for name, values in source.items():
                target[name] += values
    return merged


Timed = Callable[[int], float]  # run n calls, return the seconds they took


def timed_calls(call: Callable[[], object]) -> Timed:
    def run(n: int) -> float:
        begin = time.perf_counter()
        for _ in range(n):
            call()
        return time.perf_counter() - begin

    return run


def alternate(
    variants: Mapping[str, Timed],
    reference: str,
    *,
    chunk: int,
    rounds: int,
    blocks: int,
    warmup_rounds: int = 3,
) -> Alternation:
    """Fine-grained A/B: each round runs ``chunk`` calls of every variant back to back
    (order rotating each round), so a chunk of ours and one of raw are at most a few
    tens of milliseconds apart and see the same machine. A round's ratio is
    ``reference time / variant time`` (> 1: the variant is faster); a shared
    machine's stalls hit single rounds, which the median over rounds ignores.
    """
    names = list(variants)
    for _ in range(warmup_rounds):
        for name in names:
            variants[name](chunk)
    rates: dict[str, list[float]] = {name: [] for name in names}
    pairs: dict[str, list[float]] = {name: [] for name in names if name != reference}
    block_ratios: dict[str, list[float]] = {name: [] for name in pairs}
    turn = 0
    for _ in range(blocks):
        spent = dict.fromkeys(names, 0.0)
        block_pairs: dict[str, list[float]] = {name: [] for name in pairs}
        for _ in range(rounds):
            shift = turn % len(names)
            turn += 1
            took = {name: variants[name](chunk) for name in names[shift:] + names[:shift]}
            for name in names:
                spent[name] += took[name]
            for name in pairs:
                block_pairs[name].append(took[reference] / took[name])
        for name in names:
            rates[name].append(chunk * rounds / spent[name])
        for name in pairs:
            pairs[name] += block_pairs[name]
            block_ratios[name].append(statistics.median(block_pairs[name]))
    return Alternation(rates, pairs, block_ratios)


def rate_block(call: Callable[[], object], calls: int) -> Callable[[], float]:
    """A block of ``calls`` sequential calls, measured as calls per second."""

    def block() -> float:
        begin = time.perf_counter()
        for _ in range(calls):
            call()
        return calls / (time.perf_counter() - begin)

    return block


def calibrate(call: Callable[[], object], seconds: float, low: int = 1, high: int = 20_000) -> int:
    """How many calls of ``call`` take about ``seconds`` on an undisturbed machine.

    One untimed call first (connecting); then the probe grows until it takes 50 ms,
    and the fastest of three such probes sets the rate (a shared machine only ever
    makes a probe slower).
    """
    call()
    probe = 1
    while True:
        begin = time.perf_counter()
        for _ in range(probe):
            call()
        elapsed = time.perf_counter() - begin
        if elapsed >= 0.05 or probe >= high:
            break
        probe *= 4
    for _ in range(2):
        begin = time.perf_counter()
        for _ in range(probe):
            call()
        elapsed = min(elapsed, time.perf_counter() - begin)
    return max(low, min(high, math.ceil(seconds * probe / max(elapsed, 1e-9))))


# --- budgets and verdicts ---------------------------------------------------------------

MET, MISSED, GROSS = "met", "missed", "GROSS"


@dataclass(frozen=True)
class Budget:
    """A row's budget (docs/performance.md) and the gross-regression line for --quick.

    ``kind`` "min": the score must be at least ``limit`` (throughput ratios);
    "max": at most ``limit`` (time ratios, import deltas, ns per call).
    """

    text: str
    kind: str
    limit: float
    gross: float

    def verdict(self, value: float) -> str:
        if self.kind == "min":
            return MET if value >= self.limit else GROSS if value < self.gross else MISSED
        return MET if value <= self.limit else GROSS if value > self.gross else MISSED


UNARY_BUDGET = Budget(">= 0.97x", "min", 0.97, 0.85)
THREADS_BUDGET = Budget(">= 0.95x", "min", 0.95, 0.85)
STREAM_BUDGET = Budget(">= 0.95x", "min", 0.95, 0.85)
# The plain cycle misses its budget: 1.39-1.49x on an idle 2-vCPU machine (the plugin's
# start, 106 ms against the minimal plugin's 68 ms); the gross line sits above that.
CYCLE_BUDGET = Budget("<= 1.10x", "max", 1.10, 1.75)
IMPORT_BUDGET = Budget("<= +10 ms", "max", 10.0, 40.0)
# The bridge row comes from few short blocks and swings 0.56-1.10 per block on a loaded
# 2-vCPU machine (measured); its gross line sits lower so that noise never fails CI.
TLS_BRIDGE_BUDGET = Budget(">= 0.90x", "min", 0.90, 0.60)
TLS_BRIDGE_BIG_BUDGET = Budget(">= 0.80x", "min", 0.80, 0.40)
BUCKET_BUDGET = Budget("<= 2 us", "max", 2000.0, 6000.0)
# The multiplexed broker against direct connections.
MUX_BUDGET = Budget(">= 0.85x", "min", 0.85, 0.60)


# --- rows --------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: ours and raw (median, min-max) and the score between them.

    ``score`` is ours/raw (``score_kind`` "ratio") or ours-raw in the unit ("delta"),
    or a plain value ("value", e.g. ns per call against an absolute budget).
    ``host_path``: ours against a raw channel to the *same* plugin process (the
    host-side call path alone). ``pyvider``: pyvider-rpcplugin's plugin and client.
    """

    key: str
    title: str
    unit: str
    ours: Stat | None = None
    raw: Stat | None = None
    score: Stat | None = None
    score_kind: str = "ratio"
    budget: Budget | None = None
    host_path: Stat | None = None
    pyvider: Stat | None = None
    pyvider_score: Stat | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict[str, Any])

    @property
    def verdict(self) -> str:
        if self.budget is None or self.score is None:
            return ""
        return self.budget.verdict(self.score.median)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["budget"] = asdict(self.budget) if self.budget else None
        data["verdict"] = self.verdict
        return data


def compare(
    key: str,
    title: str,
    unit: str,
    ours: Sequence[float],
    raw: Sequence[float],
    *,
    budget: Budget | None = None,
    same: Sequence[float] | None = None,
    pyvider: Sequence[float] | None = None,
    pyvider_raw: Sequence[float] | None = None,
    kind: str = "ratio",
    note: str = "",
) -> Row:
    """A row from interleaved samples: scores are paired per block.

    ``pyvider_raw``: the raw samples paired with ``pyvider`` when pyvider ran fewer
    blocks than the others (defaults to ``raw``).
    """
    pair = paired_deltas if kind == "delta" else paired_ratios
    row = Row(key, title, unit, Stat.of(ours), Stat.of(raw), Stat.of(pair(ours, raw)), kind)
    row.budget, row.note = budget, note
    if same:
        row.host_path = Stat.of(paired_ratios(ours, same))
    if pyvider:
        row.pyvider = Stat.of(pyvider)
        row.pyvider_score = Stat.of(pair(pyvider, pyvider_raw or raw[: len(pyvider)]))
    return row


def alternation_row(
    key: str,
    title: str,
    alt: Alternation,
    *,
    budget: Budget | None = None,
    host_path: Alternation | None = None,
    note: str = "",
) -> Row:
    """A calls/s row from :func:`alternate` runs with variants "ours", "raw" (the
    reference) and maybe "pyvider"; ``host_path`` is an ours-vs-"same" alternation."""
    row = Row(key, title, "calls/s", Stat.of(alt.rates["ours"]), Stat.of(alt.rates["raw"]))
    row.score, row.budget, row.note = alt.score("ours"), budget, note
    if "pyvider" in alt.rates:
        row.pyvider, row.pyvider_score = Stat.of(alt.rates["pyvider"]), alt.score("pyvider")
    if host_path is not None:
        # host_path's reference is "same": its ratio is same time / ours time.
        row.host_path = host_path.score("ours")
    return row


def na_row(key: str, title: str, unit: str, reason: str, budget: Budget | None = None) -> Row:
    return Row(key, title, unit, budget=budget, note=f"n/a: {reason}")


def gross_failures(rows: Iterable[Row]) -> list[Row]:
    return [row for row in rows if row.verdict == GROSS]


def misses(rows: Iterable[Row]) -> list[Row]:
    return [row for row in rows if row.verdict in (MISSED, GROSS)]
