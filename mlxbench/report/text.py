"""The savings tables as Markdown (for a README or a pull request), and every record's figures as flat rows."""

from __future__ import annotations

from mlxbench.report import tables
from mlxbench.results.metrics import value_of
from mlxbench.results.record import latest_by_case
from mlxbench.results.roofline import derived_figures
from mlxbench.stats import UNSTABLE_SPREAD


def markdown_escaped(text: str) -> str:
    """``text`` as one Markdown table cell: a ``|`` would end the cell and a line break the row."""
    return text.replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>")


def _markdown_cell(cell: tables.Cell) -> str:
    text = f"**{cell.text}** ★" if cell.best else cell.text
    if cell.spread:
        text += f" ({cell.spread})"
    return text + (" ⚠" if cell.unstable else "")


def _variant_cell(row: tables.Row) -> str:
    text = row.variant
    if row.equivalence_failed:
        text += " ≠" + (f" ({', '.join(row.mismatches)})" if row.mismatches else "")
    if row.leaking:
        text += " (leak)"
    return text


def markdown_table(table: tables.Table) -> str:
    """One savings table as a GitHub Markdown table; a failed case keeps its row, with status and reason."""
    headings = ["Configuration"] + [c.label for c in table.columns] + [h for h, _ in table.savings]
    lines = ["| " + " | ".join(headings) + " |", "|---|" + "---:|" * (len(headings) - 1)]
    for row in table.rows:
        if row.ok:
            cells = [_markdown_cell(c) for c in row.cells] + [ch.text for ch in row.changes]
        else:
            cells = [f"**{row.status}**: {row.reason or 'no reason recorded'}"] + ["—"] * (len(headings) - 2)
        lines.append("| " + " | ".join(map(markdown_escaped, [_variant_cell(row), *cells])) + " |")
    return "\n".join(lines)


def to_markdown(run) -> str:
    """Every savings table of a run, with a legend that explains the signs and marks."""
    table_list = tables.savings_tables(run)
    parts = [f"### {run.name} — run {run.run_id}", ""]
    for table in table_list:
        if table.title:
            parts += [f"**{table.title}**", ""]
        parts += [markdown_table(table), ""]
    meanings = tables.savings_meanings(run, table_list)
    parts.append("; ".join(f"*{h}*: {meaning}" for h, meaning in meanings.items()) + ". "
                 "Timings: median (p10–p90). ★ best in column; "
                 f"⚠ p10–p90 spread over {round(UNSTABLE_SPREAD * 100)}% of the median; "
                 "≠ not equivalent to the baseline.")
    return "\n".join(parts) + "\n"


def flat_rows(run) -> tuple[list[str], list[dict]]:
    """The column names and one flat mapping per case (latest record) that the CSV formats write, with the figures
    derived from the run (each phase's MFU and bandwidth utilisation, ``results.roofline``)."""
    records = latest_by_case(run.records)
    axes = list(dict.fromkeys(k for r in records for k in r.sweep))
    columns: list[str] = []
    for r in records:
        for name, figure in r.metrics.items():
            names = [f"{name}_median", f"{name}_p10", f"{name}_p90", f"{name}_unstable"] \
                if isinstance(figure, dict) else [name]
            columns += [n for n in names if n not in columns]
    head = ["suite", "run_id", "case_id", "variant", *axes, "status", "reason", "is_baseline",
            "equivalent", "leaking"]
    rows = []
    for r in records:
        row = {"suite": r.suite, "run_id": r.run_id, "case_id": r.case_id, "variant": r.variant, **r.sweep,
               "status": r.status, "reason": r.reason, "is_baseline": r.is_baseline,
               "equivalent": (r.equivalence or {}).get("matches"), "leaking": (r.leak or {}).get("leaking")}
        for name, figure in r.metrics.items():
            if isinstance(figure, dict):
                row.update({f"{name}_{k}": figure.get(k) for k in ("median", "p10", "p90", "unstable")})
            elif value_of(figure) is not None or isinstance(figure, (str, bool)):
                row[name] = figure
        derived = derived_figures(r.metrics, run.env, run.metrics)
        columns += [n for n in derived if n not in columns]
        rows.append({**row, **derived})
    return head + [c for c in columns if c not in head], rows
