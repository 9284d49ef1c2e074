"""A suite's history from the results database to its page: series of every judged or memory
figure, their steps, the memory-layer findings and the machines table, drawn by report.history."""

from __future__ import annotations

from pathlib import Path

from mlxbench.history.steps import MIN_EFFECT, OS_LAYERS, Step, detect, layer_findings
from mlxbench.report.history import render_history
from mlxbench.results.db import Database, Point
from mlxbench.results.machines import machine_rows
from mlxbench.results.metrics import Metric


def charted(declarations: dict[str, Metric]) -> list[str]:
    """The figures a history shows: every judged one, MLX's peak and what the OS counted."""
    return [name for name, m in declarations.items()
            if m.judged or name == "peak_memory_bytes" or name in OS_LAYERS]


def analyse(database: Database, suite: str, metrics: list[str] | None = None,
            min_effect: float = MIN_EFFECT) -> tuple[dict[str, list[Point]], dict[str, list[Step]], dict[str, Metric]]:
    """(series, steps, declarations) of ``suite``, by metric: the charted ones unless ``metrics`` names others."""
    declared = {name: Metric.from_dict(d) for name, d in database.declarations(suite).items()}
    names = metrics or charted(declared)
    series = {name: database.series(suite, name) for name in names}
    steps = {name: detect(points, declared.get(name) or Metric(name, name), min_effect)
             for name, points in series.items()}
    return {n: p for n, p in series.items() if p}, steps, declared


def write_page(database: Database, suite: str, out: Path, metrics: list[str] | None = None) -> Path:
    """Render the history page of ``suite`` from ``database`` to ``out``; the path written."""
    series, steps, declared = analyse(database, suite, metrics)
    machines, case = machine_rows(database, suite)
    return render_history(suite, series, steps, out, declarations=declared, machines=machines,
                          machines_case=case, findings=layer_findings(series, steps))
