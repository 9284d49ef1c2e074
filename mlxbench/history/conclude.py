"""The end of a history: each target's report, the folders imported into the results database, the steps
found in each series, and the suite's history page."""

from __future__ import annotations

from pathlib import Path

from mlxbench.history.page import analyse, write_page
from mlxbench.report.html import render_run
from mlxbench.results.db import connect
from mlxbench.results.run import load_run

PAGE = "history.html"  # under the history's folder
REPORT = "report.html"  # in each target's run folder, where the page's points link


def conclude(run_dirs: list[Path], suite: str, out: Path, db_url: str | None) -> tuple[Path, list[str]]:
    """Report each run, import them all, draw the page; (the page, one line per step found)."""
    for run_dir in run_dirs:
        (run_dir / REPORT).write_text(render_run(load_run(run_dir)), encoding="utf-8")
    with connect(db_url) as database:
        for run_dir in run_dirs:
            database.import_run(run_dir)
        _, steps, declared = analyse(database, suite)
        page = write_page(database, suite, out / PAGE)
    lines = []
    for name, found in steps.items():
        label = declared[name].label if name in declared else name
        for step in found:
            lines.append(f"{label}: {step.verdict} {step.change:+.1%} between {step.before_label} and "
                         f"{step.after_label}{f' ({step.note})' if step.note else ''}")
    return page, lines
