"""The roofline section of a run's report: achieved compute and memory traffic per case and phase,
each as a share of the calibrated ceilings, and the chart of arithmetic intensity against
achieved FLOP/s under the two ceilings (compute peak, read bandwidth × intensity).

It reads only the run: the rates the workloads declared (``results.roofline``'s naming) and
the calibration in ``env.json``.
"""

from __future__ import annotations

import matplotlib
from markupsafe import Markup

from mlxbench.report import charts
from mlxbench.report.charts import plt, to_svg
from mlxbench.results import roofline
from mlxbench.results.metrics import number
from mlxbench.results.record import latest_by_case, sweep_title

HEADINGS = ("Case", "Phase", "Achieved GFLOP/s", "MFU", "Achieved GB/s read", "Bandwidth Utilisation",
            "Intensity (FLOP/byte)")


def _share(value: float | None) -> str:
    if value is None:
        return "—"
    # Above the ceiling: the calibration under-measured this machine; never shown as a plain figure.
    return f"{value * 100:.1f}%" + (" ⚠" if value > 1 else "")


def _giga(value: float | None) -> str:
    return number(None if value is None else value / 1e9)


def section(run) -> dict | None:
    """Rows, chart and the ceilings' description; None when no case declares an achieved rate."""
    names = roofline.phase_names(run.metrics)
    if not names:
        return None
    limits = roofline.ceilings(run.env)
    rows, points = [], []
    variants = list(dict.fromkeys(r.variant for r in run.records))
    for record in latest_by_case(run.records):
        if not record.ok:
            continue
        case = record.variant + (f" ({sweep_title(record.sweep)})" if record.sweep else "")
        for phase in roofline.phases(record.metrics, limits, names):
            rows.append({"case": case, "phase": phase.phase, "flops": _giga(phase.flop_per_s), "mfu": _share(phase.mfu),
                         "bytes": _giga(phase.bytes_per_s), "bandwidth": _share(phase.bandwidth_utilisation),
                         "intensity": number(phase.intensity)})
            if phase.intensity and phase.flop_per_s:
                points.append((phase.phase, variants.index(record.variant), phase.intensity, phase.flop_per_s))
    if not rows:
        return None
    return {
        "headings": HEADINGS,
        "rows": rows,
        "chart": Markup(roofline_svg(points, limits, variants)) if points else None,
        "compute": (f"{_giga(limits.flop_per_s)} GFLOP/s — {limits.flop_method}" if limits.flop_per_s else None),
        "bandwidth": (f"{_giga(limits.bytes_per_s)} GB/s — {limits.bytes_method}" if limits.bytes_per_s else None),
        "missing": limits.missing,
        "busy": limits.busy_share,
        "above": any("⚠" in r["mfu"] + r["bandwidth"] for r in rows),
    }


MARKERS = {"prefill": "s", "decode": "o"}


def roofline_svg(points: list[tuple[str, int, float, float]], limits: roofline.Ceilings,
                 variants: list[str]) -> str:
    """Intensity (FLOP/byte) against achieved FLOP/s, log–log, one point per case and phase
    ``(phase, variant index, intensity, flop_per_s)``, under the calibrated ceilings."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    xs = [p[2] for p in points]
    low, high = min(xs) / 4, max(xs) * 4
    if limits.bytes_per_s and limits.flop_per_s:
        ridge = limits.flop_per_s / limits.bytes_per_s
        low, high = min(low, ridge / 4), max(high, ridge * 4)
    grid = [low * (high / low) ** (i / 200) for i in range(201)]
    if limits.bytes_per_s:
        roof = [min(limits.bytes_per_s * x, limits.flop_per_s or float("inf")) / 1e9 for x in grid]
        ax.plot(grid, roof, "-", color="#111827", lw=1.4, label="calibrated roof: min(compute peak, read GB/s × intensity)")
    elif limits.flop_per_s:
        ax.axhline(limits.flop_per_s / 1e9, color="#111827", lw=1.4, label="calibrated compute peak")
    seen = set()
    for phase, index, intensity, flops in points:
        label = f"{variants[index]} · {phase}"
        ax.scatter(intensity, flops / 1e9, s=40, marker=MARKERS.get(phase, "D"), color=charts.colour(index),
                   edgecolors="#111827", linewidths=0.5, zorder=3, label=None if label in seen else label)
        seen.add(label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")  # not TeX: the page draws text as text
    ax.xaxis.set_major_formatter(plain)
    ax.yaxis.set_major_formatter(plain)
    ax.set_xlabel("Arithmetic intensity (FLOP per byte read)")
    ax.set_ylabel("Achieved GFLOP/s")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7)
    return to_svg(fig)
