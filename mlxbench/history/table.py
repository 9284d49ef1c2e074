"""A history's figures as text: one row per target, a column per judged figure (median over rounds)."""

from __future__ import annotations

from mlxbench.history.bisect import figure_values
from mlxbench.results.record import Record
from mlxbench.stats import summarize


def pooled(records: list[Record], metric: str) -> list[float]:
    """Every value of ``metric`` over a target's ok records (all rounds); an exact figure once per round."""
    return [v for r in records if r.ok for v in figure_values(r.metrics, metric)]


def history_table(rows: list[tuple[str, str, list[Record]]], declared: dict, names: list[str]) -> str:
    """Rows of (label, what it is, its records) as an aligned text table of medians."""
    heads = ["target", "", "rounds ok"] + [declared[n].label for n in names]
    lines = [heads]
    for label, what, records in rows:
        cells = [label, what[:40], f"{sum(r.ok for r in records)}/{len(records)}"]
        for name in names:
            values = pooled(records, name)
            cells.append(declared[name].display(summarize(values)["median"]) if values else "—")
        lines.append(cells)
    widths = [max(len(row[i]) for row in lines) for i in range(len(heads))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines)
