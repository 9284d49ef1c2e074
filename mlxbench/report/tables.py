"""Records → the savings tables a report shows: pure functions, no files, no HTML.

One table per sweep point (a suite without a sweep has one), rows in the suite's
variant order, each figure compared with the baseline variant at the same point.
Failed cases stay in the table with their status and reason.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from mlxbench.results import metrics as m
from mlxbench.results.metrics import Metric
from mlxbench.results.record import Record, latest_by_case, sweep_title
from mlxbench.results.run import Run
from mlxbench.stats import relative_change


@dataclass
class Column:
    metric: str
    label: str
    better: str | None  # "lower", "higher" or None
    spec: Metric


@dataclass
class Cell:
    text: str
    value: float | None = None  # in display units (MB, s, …)
    low: float | None = None  # p10, display units, timed figures only
    high: float | None = None  # p90
    unstable: bool = False
    best: bool = False

    @property
    def spread(self) -> str:
        if self.low is None or self.high is None:
            return ""
        return f"{m.number(self.low)}–{m.number(self.high)}"


@dataclass
class Change:
    text: str
    value: float | None
    good: bool | None  # None when neither better nor worse


@dataclass
class Row:
    variant: str
    status: str  # a record's status, or "not run" when the case has no record
    reason: str = ""
    case_id: str | None = None
    is_baseline: bool = False
    cells: list[Cell] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    equivalence_failed: bool = False
    mismatches: list[str] = field(default_factory=list)
    leaking: bool = False
    leak_slope_bytes_per_step: float | None = None
    busy_cpu_share: float | None = None  # other processes' CPU share while timing, when suspect
    colour_index: int = 0
    record: Record | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Table:
    sweep: dict
    columns: list[Column]
    savings: list[tuple[str, str]]  # (heading, metric)
    rows: list[Row]
    baseline: str | None

    @property
    def title(self) -> str:
        return sweep_title(self.sweep)


def variant_order(records: list[dict], suite: dict) -> list[str]:
    """The suite's variants (those it ran, with --only) in its order, then any only the records know."""
    declared = suite.get("variants") or []
    if isinstance(declared, dict):
        names = list(declared)
    else:
        names = [v.get("name") if isinstance(v, dict) else str(v) for v in declared]
    if suite.get("only"):  # run with --only: the other variants were never meant to run
        names = [n for n in names if n in suite["only"]]
    for r in records:
        if r.variant not in names:
            names.append(r.variant)
    return names


def baseline_name(records: list[dict], suite: dict) -> str | None:
    return suite.get("baseline") or next((r.variant for r in records if r.is_baseline), None)


def sweep_points(records: list[dict], suite: dict) -> list[dict]:
    """Every sweep point of the suite (cartesian product) and of the records, in the suite's order."""
    axes = suite.get("sweep") or {}
    points: list[dict] = []
    if isinstance(axes, dict) and all(isinstance(v, list) for v in axes.values()):
        points = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    for r in records:
        point = r.sweep
        if point not in points:
            points.append(point)

    def position(point: dict) -> tuple:
        return tuple(axes[k].index(v) if isinstance(axes, dict) and v in axes.get(k, []) else math.inf
                     for k, v in point.items())

    return sorted(points or [{}], key=position)


def columns_for(records: list[Record], declared: dict[str, Metric]) -> list[Column]:
    """The table's columns: the declared column figures that some ok record has, in declared order.

    A figure recorded as null (not measured: PyTorch's peak on a CPU) still gets its column, blank,
    so the reader sees it was not measured rather than not asked for."""
    present = {k for r in records if r.ok for k in r.metrics}
    return [Column(d.name, d.label, d.better, d) for d in declared.values() if d.column and d.name in present]


def cell(figures: dict, column: Column) -> Cell:
    """A table cell: the figure, and for timings (and rates derived from one) its p10–p90 spread."""
    figure = figures.get(column.metric)
    value = m.value_of(figure)
    if value is None:
        return Cell("—")
    div = column.spec.scale
    c = Cell(column.spec.display(figure), value / div)
    timing = figures.get(column.spec.of) if column.spec.of and not isinstance(figure, dict) else None
    if isinstance(figure, dict) and figure.get("p10") is not None and figure.get("n", 2) > 1:
        c.low, c.high = figure["p10"] / div, figure["p90"] / div
        c.unstable = bool(figure.get("unstable"))
    elif isinstance(timing, dict) and timing.get("n", 2) > 1 and timing.get("p10") and timing.get("median"):
        # rate = amount / median time, so its p10–p90 is amount / p90 … amount / p10
        c.low = value * timing["median"] / timing["p90"] / div
        c.high = value * timing["median"] / timing["p10"] / div
        c.unstable = bool(timing.get("unstable"))
    return c


def row_for(record: Record | None, variant: str, columns: list[Column]) -> Row:
    if record is None:
        return Row(variant, "not run", "no record for this case in the run", cells=[Cell("—") for _ in columns])
    row = Row(variant, record.status, record.reason, record.case_id, record.is_baseline, record=record)
    row.cells = [cell(record.metrics, c) if row.ok else Cell("—") for c in columns]
    equivalence = record.equivalence or {}
    if equivalence and equivalence.get("matches") is False:
        row.equivalence_failed = True
        row.mismatches = list(equivalence.get("mismatches") or [])
    leak = record.leak or {}
    if leak.get("leaking"):
        row.leaking = True
        row.leak_slope_bytes_per_step = leak.get("slope_bytes_per_step")
    row.busy_cpu_share = m.busy_machine_share(record.metrics)
    return row


def mark_best(rows: list[Row], columns: list[Column]) -> None:
    """Flag the best figure of each column among ok rows (ties all flagged), if there is a choice."""
    for i, col in enumerate(columns):
        if col.better is None:
            continue
        values = [r.cells[i].value for r in rows if r.ok and r.cells[i].value is not None]
        if len(set(values)) < 2:
            continue
        best = min(values) if col.better == "lower" else max(values)
        for r in rows:
            if r.ok and r.cells[i].value == best:
                r.cells[i].best = True


def changes_against(row: Row, base: Row | None, savings: list[Column]) -> list[Change]:
    out = []
    for column in savings:
        if row.is_baseline or base is None or not base.ok or not row.ok or row.record is base.record:
            out.append(Change("—", None, None))
            continue
        change = relative_change(m.value_of(row.record.metrics.get(column.metric)),
                                 m.value_of(base.record.metrics.get(column.metric)))
        good = None if change is None or abs(change) < 0.0005 or column.better is None else (
            (change < 0) == (column.better == "lower"))
        out.append(Change(m.percent(change), change, good))
    return out


def savings_tables(run: Run) -> list[Table]:
    """The savings tables of a run: one per sweep point, rows in variant order, nothing dropped."""
    records = latest_by_case(run.records)
    columns = columns_for(records, run.metrics)
    savings = [(c.spec.savings, c.metric) for c in columns if c.spec.savings]
    savings_columns = [c for c in columns if c.spec.savings]
    variants = variant_order(records, run.suite)
    baseline = baseline_name(records, run.suite)
    tables = []
    for point in sweep_points(records, run.suite):
        here = [r for r in records if r.sweep == point]
        rows = []
        for index, variant in enumerate(variants):
            for record in [r for r in here if r.variant == variant] or [None]:
                row = row_for(record, variant, columns)
                row.is_baseline = row.is_baseline or variant == baseline
                row.colour_index = index
                rows.append(row)
        base = next((r for r in rows if r.is_baseline), None)
        for row in rows:
            row.changes = changes_against(row, base, savings_columns)
        mark_best(rows, columns)
        tables.append(Table(point, columns, savings, rows, baseline))
    return tables


def savings_meanings(run: Run, table_list: list[Table]) -> dict[str, str]:
    """What each change column's sign means, by heading, for the caption under the tables."""
    return {heading: run.metrics[metric].savings_meaning for t in table_list for heading, metric in t.savings}


def failed_cases(records: list[Record]) -> list[dict]:
    """Every case that did not finish ok: variant, sweep, status, reason and traceback."""
    return [{"variant": r.variant, "sweep": r.point, "case_id": r.case_id, "status": r.status,
             "reason": r.reason, "message": (r.error or {}).get("message") or "",
             "traceback": (r.error or {}).get("traceback") or ""}
            for r in latest_by_case(records) if not r.ok]


def pareto_front(points: list[tuple[float, float]], x_better: str = "lower",
                 y_better: str = "lower") -> list[bool]:
    """For each (x, y), whether no other point is at least as good in both and better in one."""
    def key(p):  # turn both into "lower is better"
        return (p[0] if x_better == "lower" else -p[0], p[1] if y_better == "lower" else -p[1])

    keyed = [key(p) for p in points]
    return [not any(o[0] <= k[0] and o[1] <= k[1] and o != k for o in keyed) for k in keyed]


def env_rows(env: dict) -> list[tuple[str, str]]:
    """The environment as (label, value) lines: device, chip, memory, versions, BLAS, git sha."""
    if not env:
        return []
    mlx = env.get("mlx") or {}
    cpu = env.get("cpu") or {}
    info = mlx.get("device_info") or {}
    rows = [
        ("Device", f"{mlx.get('backend', '?')} ({mlx.get('device', '?')})"),
        ("Chip", info.get("device_name") or cpu.get("name") or "?"),
        ("CPU cores", f"{cpu.get('physical_cores', '?')} physical, {cpu.get('logical_cores', '?')} logical"),
        ("Memory", f"{env['memory_total_bytes'] / 2**30:.1f} GiB" if env.get("memory_total_bytes") else "?"),
        ("OS", (env.get("os") or {}).get("platform") or "?"),
        ("Python", env.get("python") or "?"),
        ("MLX", mlx.get("version") or "?"),
        ("mlx-lm", (env.get("mlx_lm") or {}).get("version") or "?"),
        ("BLAS", (env.get("blas") or {}).get("name") or "?"),
        ("mlxbench", f"{(env.get('mlxbench') or {}).get('version', '?')} "
                     f"(git {(env.get('mlxbench') or {}).get('git_sha') or 'unknown'})"),
    ]
    calibration = env.get("calibration") or {}
    if calibration.get("matmul_fp32_gflops") is not None:
        rows.append(("Calibration", f"{calibration['matmul_fp32_gflops']} GFLOP/s fp32 matmul, "
                                    + (f"{calibration['memory_read_gbps']} GB/s read ({calibration.get('memory_read_method', '')})"
                                       if "memory_read_gbps" in calibration else
                                       f"{calibration.get('memory_bandwidth_gbps', '?')} GB/s copy")))
    rows += [("Note", note) for note in [*(env.get("notes") or []), *((env.get("blas") or {}).get("notes") or [])]]
    rows += [("Host", env.get("hostname") or "?"), ("Captured", env.get("captured_at") or "?"),
             ("Environment id", env.get("env_id") or "?")]
    return rows


def phase_summary(timeline: dict) -> list[dict]:
    """Per phase: its duration and the highest MLX active memory and RSS sampled during it."""
    t = timeline.get("t") or []
    phases = timeline.get("phases") or []
    end = t[-1] if t else 0.0
    out = []
    for i, p in enumerate(phases):
        stop = phases[i + 1]["start"] if i + 1 < len(phases) else end
        inside = [j for j, tj in enumerate(t) if p["start"] <= tj <= stop]

        def peak(key, inside=inside):
            values = [timeline[key][j] for j in inside if timeline.get(key)]
            return max(values) if values else None

        out.append({"name": p["name"], "start_s": p["start"], "duration_s": max(stop - p["start"], 0.0),
                    "peak_active_bytes": peak("active"), "peak_rss_bytes": peak("rss")})
    return out
