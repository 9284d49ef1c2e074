"""The history page of a suite: a chart per metric over versions or commits with the detected steps
marked, what each step's samples say, every point with a link to its run, and machines side by side.

It takes plain data: points (``results.db.Point``) and steps (anything with the fields of
``history.steps.Step``), so it imports nothing above ``results``.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
from markupsafe import Markup

from mlxbench.report import charts
from mlxbench.report.html import _render
from mlxbench.results.metrics import MB, Metric, guess, number, percent

STEP_COLOUR = "#b91c1c"
UNSURE_COLOUR = "#9ca3af"


def _x_labels(points: list) -> list[str]:
    """The point labels of every series, in history order."""
    return list(dict.fromkeys(p.label for p in sorted(points, key=lambda p: (p.order, p.label))))


def _series_name(point, several_machines: bool) -> str:
    return f"{point.case_label} · {point.machine}" if several_machines else point.case_label


def history_svg(points: list, steps: list, metric: Metric) -> str:
    """One line per series over the history's labels; confirmed steps as red dashed lines, steps that
    cannot be told as grey dotted ones, outliers ringed."""
    labels = _x_labels(points)
    x_of = {label: i for i, label in enumerate(labels)}
    several = len({p.machine for p in points}) > 1
    fig, ax = plt.subplots(figsize=(9, 3.4))
    lines = {}
    keys = dict.fromkeys(p.key for p in sorted(points, key=lambda p: (p.case_label, p.machine)))
    for i, key in enumerate(keys):
        mine = sorted((p for p in points if p.key == key), key=lambda p: x_of[p.label])
        lines[key] = {p.label: p.median / metric.scale for p in mine}
        ax.plot([x_of[p.label] for p in mine], [p.median / metric.scale for p in mine], "-o", ms=4, lw=1.5,
                color=charts.colour(i), label=_series_name(mine[0], several))
    marked: dict[int, int] = {}  # steps already annotated at each x: stack their labels downwards
    for step in steps:
        x = x_of.get(step.after_label)
        if x is None:
            continue
        if step.verdict == "outlier":
            y = lines.get(step.key, {}).get(step.after_label)
            if y is not None:
                ax.plot([x], [y], "o", ms=11, mfc="none", mec=UNSURE_COLOUR, mew=1.5)
            continue
        sure = step.verdict != "cannot tell"
        ax.axvline(x - 0.5, color=STEP_COLOUR if sure else UNSURE_COLOUR, ls="--" if sure else ":", lw=1.2)
        marked[x] = marked.get(x, 0) + 1
        ax.annotate(f"{step.verdict} {percent(step.change)}", (x - 0.5, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -10 * marked[x]), textcoords="offset points", fontsize=8,
                    color=STEP_COLOUR if sure else "#6b7280")
    ax.set_xticks(range(len(labels)), labels, rotation=20 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
    ax.set_xlim(-0.5, max(len(labels) - 0.5, 0.5))
    ax.set_ylabel(metric.label)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return charts.to_svg(fig)


def _declaration(name: str, declared) -> Metric:
    if isinstance(declared, Metric):
        return declared
    if isinstance(declared, dict):
        return Metric.from_dict(declared)
    return guess(name)


def _link(run_dir: str, out: Path) -> str:
    """A link, relative to the page, to the run's report beside its records, else to its folder."""
    report = Path(run_dir) / "report.html"
    target = report if report.exists() else Path(run_dir)
    return Path(os.path.relpath(target.resolve(), out.resolve().parent)).as_posix()


def _metric_section(name: str, points: list, steps: list, metric: Metric, out: Path) -> dict:
    several = len({p.machine for p in points}) > 1
    ordered = sorted(points, key=lambda p: (p.key, p.order))
    return {
        "name": name, "label": metric.label, "chart": Markup(history_svg(points, steps, metric)),
        "longest": max(sum(p.key == key for p in points) for key in {p.key for p in points}),
        "steps": [{"case": s.case_label, "at": f"{s.before_label} → {s.after_label}",
                   "levels": f"{number(s.before / metric.scale)} → {number(s.after / metric.scale)}",
                   "change": percent(s.change), "verdict": s.verdict, "sure": s.verdict not in ("cannot tell", "outlier"),
                   "test": s.test, "p": "—" if s.p is None else f"{s.p:.2g}", "note": s.note} for s in steps],
        "points": [{"label": p.label, "case": _series_name(p, several), "median": number(p.median / metric.scale),
                    "n": len(p.samples), "runs": len(p.runs) or 1, "href": _link(p.run_dir, out),
                    "run": Path(p.run_dir).name} for p in ordered],
    }


def _machine_rows(machines: list[dict]) -> list[dict]:
    return [{**m, "memory": number((m.get("memory_total_bytes") or 0) / 1e9) if m.get("memory_total_bytes") else "—",
             "bandwidth": number(m.get("bandwidth_gbps")), "pp512": number(m.get("pp512")),
             "tg128": number(m.get("tg128")), "step": number(m.get("step_time_s")),
             "peak": number(None if m.get("peak_memory_bytes") is None else m["peak_memory_bytes"] / MB),
             "cores": "—" if m.get("cores") is None else m["cores"]} for m in machines]


def render_history(suite: str, series: dict[str, list], steps: dict[str, list], out: Path, *,
                   declarations: dict | None = None, machines: list[dict] | None = None,
                   machines_case: str = "", findings: list[str] | None = None) -> Path:
    """Write the history page of ``suite`` to ``out``; the path written.

    ``series``: metric → points (results.db.Point); ``steps``: metric → its steps; ``declarations``:
    metric → Metric (or its dict) for labels and units; ``machines``: results.machines rows.
    """
    out = Path(out)
    declarations = declarations or {}
    sections = [_metric_section(name, points, steps.get(name, []), _declaration(name, declarations.get(name)), out)
                for name, points in series.items() if points]
    every_step = [s for name in series for s in steps.get(name, [])]
    all_points = [p for points in series.values() for p in points]
    html = _render("history.html.j2", suite=suite, sections=sections, findings=findings or [],
                   machines=_machine_rows(machines or []), machines_case=machines_case,
                   labels=_x_labels(all_points), n_machines=len({p.machine for p in all_points}),
                   confirmed=sum(s.verdict not in ("cannot tell", "outlier") for s in every_step),
                   unsure=sum(s.verdict == "cannot tell" for s in every_step),
                   outliers=sum(s.verdict == "outlier" for s in every_step))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
