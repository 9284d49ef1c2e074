"""Self-contained HTML pages: jinja2 templates, inline CSS, charts inline as SVG.

Nothing on a page is fetched: no scripts, no fonts, no images by URL, so a report
opens the same offline, in a CI artifact viewer, or printed.
"""

from __future__ import annotations

import shlex

import jinja2
from markupsafe import Markup

import mlxbench
from mlxbench.report import charts, cost, frameworks, tables
from mlxbench.report import distributed as across_processes
from mlxbench.report import comparison as comparison_text
from mlxbench.report import memory as memory_truth
from mlxbench.report import roofline
from mlxbench.report import estimate as estimate_report
from mlxbench.results import metrics as m
from mlxbench.results.record import latest_by_case
from mlxbench.stats import UNSTABLE_SPREAD
from mlxbench.results import units

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("mlxbench.report", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


def _render(template: str, **context) -> str:
    return _ENV.get_template(template).render(
        version=mlxbench.__version__, palette=charts.colour, unstable_pct=round(UNSTABLE_SPREAD * 100),
        peak_source=memory_truth.peak_source, **context)


def render_profile(profile: dict) -> str:
    """The page of ``mlxbench profile``: the memory timeline with phases shaded and a phase table.

    ``profile`` = {"timeline", "peak_bytes", "peak_rss_bytes", "env", "script", "command"}, and
    optionally what ``mlxbench profile`` adds: "argv", "exit_status", "peak_phase", "leak".
    """
    timeline = profile.get("timeline") or {}
    t = timeline.get("t") or []
    chart = Markup(memory_truth.three_layer_svg(timeline)) if t else None
    phases = [
        {"name": p["name"], "start": f"{p['start_s']:.3f}", "duration": f"{p['duration_s']:.3f}",
         "active": units.mb(p["peak_active_bytes"]), "rss": units.mb(p["peak_rss_bytes"])}
        for p in tables.phase_summary(timeline)
    ]
    script = profile.get("script") or "script"
    command = profile.get("command") or " ".join(
        ["mlxbench", "profile", "--", "python", shlex.quote(str(script)),
         *(shlex.quote(str(a)) for a in profile.get("argv") or [])])
    leak = profile.get("leak") or {}
    return _render(
        "profile.html.j2",
        script=script,
        command=command,
        peak_phase=profile.get("peak_phase"),
        exit_status=profile.get("exit_status"),
        leaking=bool(leak.get("leaking")),
        leak_reason=leak.get("reason") or "",
        divergence=(profile.get("memory") or {}).get("divergence") or {},
        leak_slope=leak.get("slope_bytes_per_step"),
        peak_mb=units.mb(profile.get("peak_bytes")),
        peak_rss_mb=units.mb(profile.get("peak_rss_bytes")),
        duration=m.number(t[-1] if t else 0.0),
        samples=len(t),
        chart=chart,
        phases=phases,
        env_rows=tables.env_rows(profile.get("env") or {}),
    )


def reproduce_command(run) -> str:
    """The command that reproduces the run: as the runner recorded it, else rebuilt from the suite."""
    for source in (run.suite, run.env):
        command = source.get("command")
        if command:
            return command if isinstance(command, str) else " ".join(map(str, command))
    path = run.suite.get("path") or run.suite.get("source") or f"suites/{run.name}.yaml"
    parts = ["mlxbench", "run", shlex.quote(str(path))]
    if run.suite.get("profile"):
        parts += ["--profile", str(run.suite["profile"])]
    if run.suite.get("only"):
        parts += ["--only", *(shlex.quote(str(v)) for v in run.suite["only"])]
    return " ".join(parts)


def _headline(table: tables.Table, kinds: tuple[str, ...]) -> str | None:
    """The column of these kinds that has a change column, else the first of them, else None."""
    found = [c for c in table.columns if c.spec.kind in kinds]
    return next((c.metric for c in found if c.spec.savings), found[0].metric if found else None)


def _time_metric(table: tables.Table) -> str | None:
    return _headline(table, ("timing", "rate"))


def _memory_metric(table: tables.Table) -> str | None:
    return _headline(table, ("memory",))


def _labels(table: tables.Table, *metrics: str | None) -> list[str]:
    return [c.label for metric in metrics for c in table.columns if c.metric == metric]


def _column_index(table: tables.Table, metric: str | None) -> int | None:
    return next((i for i, c in enumerate(table.columns) if c.metric == metric), None)


def bars_chart(table: tables.Table) -> Markup | None:
    """Peak memory and step time (or decode speed) per variant, timing spread as error bars."""
    panels = []
    for metric in (_memory_metric(table), _time_metric(table)):
        i = _column_index(table, metric)
        if i is None:
            continue
        cells = [r.cells[i] if r.ok else None for r in table.rows]
        has_spread = any(c is not None and c.low is not None for c in cells)
        panels.append({
            "title": table.columns[i].label,
            "values": [c.value if c else None for c in cells],
            "texts": [c.text if c else "" for c in cells],
            "low": [c.low if c and c.low is not None else (c.value if c else None) for c in cells]
            if has_spread else None,
            "high": [c.high if c and c.high is not None else (c.value if c else None) for c in cells]
            if has_spread else None,
        })
    if not panels or not table.rows:
        return None
    return Markup(charts.bars_svg([r.variant for r in table.rows], panels))


def timelines_chart(table: tables.Table) -> Markup | None:
    series = [(r.variant, r.record.memory_timeline) for r in table.rows
              if r.record and (r.record.memory_timeline or {}).get("t")]
    return Markup(charts.timelines_svg(series)) if series else None


def sweep_charts(table_list: list[tables.Table]) -> list[dict]:
    """For each numeric swept axis with 2+ values: the time headline and peak memory against it."""
    if len(table_list) < 2:
        return []
    axes = list(table_list[0].sweep)
    out = []
    for axis in axes:
        xs = sorted({t.sweep[axis] for t in table_list if isinstance(t.sweep.get(axis), (int, float))})
        if len(xs) < 2:
            continue
        others = [a for a in axes if a != axis]
        for metric in (_time_metric(table_list[0]), _memory_metric(table_list[0])):
            i = _column_index(table_list[0], metric)
            if i is None:
                continue
            lines: dict[str, dict] = {}
            for t in table_list:
                rest = ", ".join(f"{a}={t.sweep[a]}" for a in others)
                for r in t.rows:
                    label = r.variant + (f" ({rest})" if rest else "")
                    lines.setdefault(label, {})[t.sweep[axis]] = r.cells[i].value if r.ok else None
            series = [(label, xs, [points.get(x) for x in xs]) for label, points in lines.items()]
            log_x = all(x > 0 for x in xs) and xs[-1] / xs[0] >= 8
            out.append({"title": f"{table_list[0].columns[i].label} against {axis}",
                        "svg": Markup(charts.sweep_svg(series, axis, table_list[0].columns[i].label, log_x))})
    return out


def pareto_chart(table_list: list[tables.Table]) -> Markup | None:
    """Memory against time over every ok case; filled points are on the Pareto front."""
    first = table_list[0]
    xm, ym = _time_metric(first), _memory_metric(first)
    xi, yi = _column_index(first, xm), _column_index(first, ym)
    if xi is None or yi is None or xm == ym:
        return None
    points = []
    for t in table_list:
        for r in t.rows:
            x, y = (r.cells[xi].value, r.cells[yi].value) if r.ok else (None, None)
            if x is not None and y is not None:
                label = r.variant + (f" ({', '.join(map(str, t.sweep.values()))})" if len(table_list) > 1 else "")
                points.append({"label": label, "x": x, "y": y, "colour_index": r.colour_index, "group": t.title})
    if len(points) < 2:
        return None
    # The front is drawn per sweep point: a longer sequence costs more and is not a rival configuration.
    for group in {p["group"] for p in points}:
        members = [p for p in points if p["group"] == group]
        front = tables.pareto_front([(p["x"], p["y"]) for p in members], first.columns[xi].better or "lower",
                                    "lower")
        for p, on in zip(members, front):
            p["front"] = on
    return Markup(charts.pareto_svg(points, first.columns[xi].label, first.columns[yi].label))


def _counts(records: list[dict]) -> dict:
    latest = latest_by_case(records)
    timed = [v for r in latest for v in r.metrics.values() if isinstance(v, dict)]
    return {
        "cases": len(latest),
        "ok": sum(r.ok for r in latest),
        "failed": sum(not r.ok for r in latest),
        "unstable": sum(bool(v.get("unstable")) for v in timed),
        "equivalence": sum((r.equivalence or {}).get("matches") is False for r in latest),
        "leaks": sum(bool((r.leak or {}).get("leaking")) for r in latest),
    }


def render_run(run, comparison: dict | None = None, compare_label: str = "") -> str:
    """The report of one run: savings tables, charts, failed cases, environment, reproduce command."""
    table_list = tables.savings_tables(run)
    sections = [{"table": t, "bars": bars_chart(t), "timelines": timelines_chart(t),
                 "bars_caption": " and ".join(_labels(t, _memory_metric(t), _time_metric(t))) + " per variant"}
                for t in table_list]
    return _render(
        "run.html.j2",
        run=run,
        suite=run.suite,
        workload=run.workload,
        counts=_counts(run.records),
        sections=sections,
        meanings=tables.savings_meanings(run, table_list),
        sweep_charts=sweep_charts(table_list),
        pareto=pareto_chart(table_list) if table_list else None,
        pareto_caption=" against ".join(_labels(table_list[0], _memory_metric(table_list[0]),
                                                _time_metric(table_list[0]))) if table_list else "",
        failed=tables.failed_cases(run.records),
        distributed=across_processes.section(run),  # cases of several ranks; None without
        memory_rows=memory_truth.truth_rows(run.records),
        memory_charts=memory_truth.case_charts(run.records),
        estimate_section=estimate_report.section(run.records),
        env_rows=tables.env_rows(run.env),
        command=reproduce_command(run),
        comparison=comparison,
        compare_label=compare_label,
        compare_rows=_compare_rows(comparison) if comparison else [],
        compare_changes=_compare_rows(comparison, significant_only=True) if comparison else [],
        compare_summary=_compare_summary(comparison) if comparison else "",
        started=min((r.started_at for r in run.records), default=""),
        fixed_cost=cost.fixed_cost(run.records),
        roofline=roofline.section(run),
        paired_sections=frameworks.sections(run),
    )


def _compare_summary(comparison: dict) -> str:
    return comparison_text.summary_line(comparison)


def _compare_rows(comparison: dict, significant_only: bool = False) -> list[dict]:
    return [dict(zip(comparison_text.HEADINGS, r)) for r in comparison_text.rows(comparison, significant_only)]
