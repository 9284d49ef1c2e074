"""The report's part for cases of several ranks: latency and bandwidth against message size (log–log),
scaling efficiency against the number of processes, and each rank's own figures and spread.

It reads the records' ``distributed`` field, their ``distributed`` parameter and the run's metric
declarations; never a workload's name. Scaling efficiency is the one-process case's step time over
N × the N-rank case's, at otherwise the same parameters (the same global batch): 100% is perfect.
"""

from __future__ import annotations

import json

from markupsafe import Markup
from matplotlib.ticker import FuncFormatter, NullFormatter

from mlxbench.report import charts
from mlxbench.report.charts import plt
from mlxbench.results import metrics as m
from mlxbench.results.record import Record, latest_by_case
from mlxbench.results import units

SIZE_SUFFIX = "_bytes"  # a swept axis whose name ends so is a message size: charts against it are log–log


def processes(record: Record) -> int:
    """How many ranks ran the case: the group's size when recorded, else as its parameter asked."""
    if record.distributed and isinstance(record.distributed.get("size"), int):
        return record.distributed["size"]
    return int((record.params.get("distributed") or {}).get("processes") or 1)


def section(run) -> dict | None:
    """What the report shows of a run with cases of several ranks; None when it has none."""
    records = latest_by_case(run.records)
    if not any(processes(r) > 1 for r in records):
        return None
    return {"curves": size_charts(run, records), "scaling": scaling_rows(records),
            "scaling_chart": scaling_chart(records), "ranks": rank_rows(records)}


def _step_time(record: Record) -> float | None:
    return m.value_of(record.metrics.get("step_time_s")) if record.ok else None


def size_charts(run, records: list[Record]) -> list[dict]:
    """Bandwidth and latency against each message-size axis, log–log: one line per figure and variant."""
    axes = {k for r in records for k, v in r.sweep.items() if k.endswith(SIZE_SUFFIX) and isinstance(v, (int, float))}
    rates = [s for s in run.metrics.values() if s.kind == "rate" and s.column and s.unit.endswith("B/s")]
    latencies = [run.metrics[s.of] for s in rates if s.of in run.metrics]
    out = []
    for axis in sorted(axes):
        for title, specs in (("Bandwidth", rates), ("Latency", latencies)):
            lines = _lines(records, axis, specs)
            if lines:
                out.append({"title": f"{title} against {axis}",
                            "svg": Markup(loglog_svg(lines, axis, specs[0].label if len(specs) == 1
                                                     else f"{title} ({specs[0].unit})"))})
    return out


def _lines(records: list[Record], axis: str, specs: list[m.Metric]) -> list[tuple[str, list, list]]:
    lines: dict[str, dict] = {}
    for r in records:
        rest = ", ".join(f"{k}={v}" for k, v in r.sweep.items() if k != axis)
        for spec in specs:
            value = m.value_of(r.metrics.get(spec.name)) if r.ok else None
            if value is not None and value > 0:
                label = f"{spec.label.split(' (')[0]} · {r.variant}" + (f" ({rest})" if rest else "")
                lines.setdefault(label, {})[r.sweep[axis]] = value / spec.scale
    return [(label, sorted(points), [points[x] for x in sorted(points)]) for label, points in lines.items()
            if len(points) >= 2]


def loglog_svg(lines: list[tuple[str, list, list]], xlabel: str, ylabel: str) -> str:
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for i, (label, xs, ys) in enumerate(lines):
        ax.plot(xs, ys, "-o", color=charts.colour(i), lw=1.6, ms=4, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sorted({x for _, xs, _ in lines for x in xs}))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: size_text(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="best", fontsize=7)
    return charts.to_svg(fig)


def size_text(size: float) -> str:
    """1 KiB, 64 KiB, 4 MiB, 1 GiB; 1000 B."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size:g} B"


def _settings_key(record: Record) -> str:
    return json.dumps({k: v for k, v in record.params.items() if k != "distributed"}, sort_keys=True, default=str)


def scaling_rows(records: list[Record]) -> list[dict]:
    """Each case of several ranks against the one-process case at the same settings (same global batch)."""
    single = {_settings_key(r): r for r in records if processes(r) == 1}
    rows = []
    for r in records:
        n = processes(r)
        if n == 1:
            continue
        reference = single.get(_settings_key(r))
        if reference is None:
            continue  # nothing to scale against: the section says so
        t1, tn = _step_time(reference), _step_time(r)
        efficiency = t1 / (n * tn) if t1 and tn else None
        why = "" if efficiency is not None else f"{reference.variant}: {reference.status}; this case: {r.status}"
        spread = m.value_of(r.metrics.get("rank_step_time_spread"))
        rows.append({"variant": r.variant, "point": r.point, "processes": n,
                     "backend": (r.distributed or {}).get("backend", "—"),
                     "step": m.number(tn), "single": m.number(t1),
                     "speedup": m.number(t1 / tn) if t1 and tn else "—",
                     "efficiency": f"{efficiency:.0%}" if efficiency is not None else "—",
                     "efficiency_value": efficiency,
                     "spread": f"{spread:.1%}" if spread is not None else "—", "why": why})
    return rows


def scaling_chart(records: list[Record]) -> Markup | None:
    """Scaling efficiency against the number of processes, one line per variant's settings."""
    lines: dict[str, dict] = {}
    for row in scaling_rows(records):
        if row["efficiency_value"] is not None:
            label = row["point"] or "same global batch"
            lines.setdefault(label, {1: 1.0})[row["processes"]] = row["efficiency_value"]
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    for i, (label, points) in enumerate(lines.items()):
        xs = sorted(points)
        ax.plot(xs, [100 * points[x] for x in xs], "-o", color=charts.colour(i), lw=1.6, ms=4, label=label)
    ax.axhline(100, color="#9ca3af", lw=0.8, ls="--")
    ax.set_xticks(sorted({x for p in lines.values() for x in p}))
    ax.set_xlabel("processes")
    ax.set_ylabel("scaling efficiency (%)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="best", fontsize=7)
    return Markup(charts.to_svg(fig))


def rank_rows(records: list[Record]) -> dict:
    """Every rank's own step time and memory, per case of several ranks, and how far it got if it failed;
    the groups they ran in, each described once."""
    rows, groups = [], []
    for r in records:
        group, ranks = r.distributed or {}, (r.distributed or {}).get("ranks") or []
        if processes(r) == 1 or not ranks:
            continue
        times = [x.get("step_time_s") for x in ranks if x.get("step_time_s")]
        fastest = min(times) if times else None
        for x in ranks:
            rows.append({"case": f"{r.variant}{' · ' + r.point if r.point else ''}" if x is ranks[0] else "",
                         "rank": x.get("rank"), "host": x.get("host") or (x.get("progress") or {}).get("host") or "—",
                         "status": x.get("status") or "no outcome",
                         "progress": (x.get("progress") or {}).get("phase", ""),
                         "step": m.number(x.get("step_time_s")), "peak": units.mb(x.get("peak_memory_bytes")),
                         "rss": units.mb(x.get("peak_rss_bytes")),
                         "behind": f"+{x['step_time_s'] / fastest - 1:.1%}" if fastest and x.get("step_time_s")
                         else "—"})
        if "backend" in group:
            words = (f"{group['backend']} backend, {processes(r)} ranks on {', '.join(group.get('hosts') or ['—'])}, "
                     f"launched by {group.get('launcher', '—')}, {group.get('threads_per_rank') or '—'} BLAS "
                     f"thread(s) per rank")
            groups += [words] if words not in groups else []
    return {"rows": rows, "groups": groups}

