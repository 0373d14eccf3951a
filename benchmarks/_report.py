"""The result table (text and markdown) and the plot of the ratios."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from ._common import Row, Stat

# --- formatting ---------------------------------------------------------------------------


def fmt_value(value: float, unit: str) -> str:
    if unit in ("ms", "MiB"):
        return f"{value:,.1f}"
    if unit == "ns":
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def fmt_stat(stat: Stat | None, unit: str) -> str:
    if stat is None:
        return "n/a"
    if stat.n == 1:
        return fmt_value(stat.median, unit)
    low, high = fmt_value(stat.low, unit), fmt_value(stat.high, unit)
    return f"{fmt_value(stat.median, unit)} ({low}-{high})"


def fmt_score(stat: Stat | None, kind: str, unit: str) -> str:
    if stat is None:
        return "n/a"
    if kind == "delta":
        body = f"{stat.median:+.1f} {unit}"
        return body if stat.n == 1 else f"{body} ({stat.low:+.1f}..{stat.high:+.1f})"
    if kind == "value":
        return fmt_stat(stat, unit) + f" {unit}"
    body = f"{stat.median:.3f}x"
    return body if stat.n == 1 else f"{body} ({stat.low:.2f}-{stat.high:.2f})"


COLUMNS = (
    "benchmark",
    "unit",
    "ours",
    "raw grpcio",
    "ours/raw",
    "budget",
    "host path",
    "pyvider-rpcplugin",
    "pyvider/raw",
)


def table_cells(row: Row) -> list[str]:
    budget = ""
    if row.budget is not None:
        budget = f"{row.budget.text} {row.verdict}" if row.score else row.budget.text
    pyvider = fmt_stat(row.pyvider, row.unit) if row.pyvider is not None else ""
    if row.pyvider is None and "pyvider n/a" in row.note:
        pyvider = "n/a*"  # the reason is in the notes
    return [
        row.title,
        row.unit,
        fmt_stat(row.ours, row.unit),
        fmt_stat(row.raw, row.unit),
        fmt_score(row.score, row.score_kind, row.unit),
        budget,
        fmt_score(row.host_path, "ratio", row.unit) if row.host_path else "",
        pyvider,
        fmt_score(row.pyvider_score, row.score_kind, row.unit) if row.pyvider_score else "",
    ]


def format_table(rows: Sequence[Row]) -> str:
    """A plain-text table, columns as wide as their widest cell; notes listed below it."""
    cells = [list(COLUMNS)] + [table_cells(row) for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines: list[str] = []
    for index, line in enumerate(cells):
        parts = [
            text.ljust(width) if col < 2 or col == 5 else text.rjust(width)
            for col, (text, width) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"  {row.title}: {row.note}" for row in rows if row.note]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)


def format_markdown(rows: Sequence[Row]) -> str:
    """The same table as GitHub markdown (for the README)."""
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        out.append("| " + " | ".join(c.replace("|", "/") for c in table_cells(row)) + " |")
    return "\n".join(out)


# --- plot ---------------------------------------------------------------------------------


def pyplot() -> Any | None:
    """matplotlib.pyplot on the Agg backend, or None without matplotlib.

    matplotlib is optional (not in the dev environment, so no type information):
    the module is typed Any rather than left unknown."""
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return None
    return plt


def plot_ratios(rows: Sequence[Row], path: str) -> bool:
    """A bar chart of the ratio scores (ours and pyvider vs raw), if matplotlib is there."""
    plt = pyplot()
    if plt is None:
        return False
    ratio_rows = [r for r in rows if r.score is not None and r.score_kind == "ratio"]
    if not ratio_rows:
        return False
    height = 0.38
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(ratio_rows) + 1.5))
    for index, row in enumerate(reversed(ratio_rows)):
        assert row.score is not None
        score = row.score
        ax.barh(index + height / 2, score.median, height, color="tab:blue")
        ax.plot([score.low, score.high], [index + height / 2] * 2, color="black", lw=1)
        if row.pyvider_score is not None:
            ax.barh(index - height / 2, row.pyvider_score.median, height, color="tab:orange")
        if row.budget is not None:
            ax.plot([row.budget.limit] * 2, [index - 0.45, index + 0.45], color="red", lw=1.5)
    ax.set_yticks(range(len(ratio_rows)))
    ax.set_yticklabels([r.title for r in reversed(ratio_rows)], fontsize=8)
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("ratio to raw grpcio (throughput: higher is better; time: lower is better)")
    handles = [
        plt.Rectangle((0, 0), 1, 1, color="tab:blue"),
        plt.Rectangle((0, 0), 1, 1, color="tab:orange"),
        plt.Line2D([0], [0], color="red"),
    ]
    ax.legend(handles, ["pyvider_rpcplugin_sync", "pyvider-rpcplugin", "budget"], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
