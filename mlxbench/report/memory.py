"""Memory truth in a report: MLX's figures beside what the OS counted, as a table and a chart per case.

Reads each record's ``memory`` (machine.memory_truth: process and system layers, the divergence
and its cause) and ``memory_timeline``; a record without them (an older run) is left out.
"""

from __future__ import annotations

from markupsafe import Markup

from mlxbench.report import charts
from mlxbench.report.charts import PALETTE, Patch, phase_colour, plt, to_svg
from mlxbench.results import metrics as m
from mlxbench.results.record import latest_by_case, sweep_title
from mlxbench.results import units

MAX_CHARTS = 24  # per report: each chart is a sizeable SVG
# Which peak a memory column shows, for the savings table's header.
PEAK_SOURCES = {"peak_memory_bytes": "MLX's peak: active buffers only, not its cache",
                "process_peak_bytes": "the process's peak, as the OS counts it",
                "peak_rss_bytes": "the process's resident memory, sampled",
                "torch_peak_memory_bytes": "PyTorch's own counter (CUDA, MPS), not MLX's; blank on a CPU"}
LAYERS = (  # (panel title, [(series, label, colour, line style)])
    ("MLX", [("active", "active", PALETTE[0], "-"), ("cache", "cache", PALETTE[2], "-"),
             ("peak", "peak", PALETTE[4], ":")]),
    ("process (OS)", [("process", "footprint / RSS", "#111827", "-"), ("rss_anon", "RSS anonymous", PALETTE[3], "--"),
                      ("rss_file", "RSS file-backed", PALETTE[5], "--"), ("process_swap", "swapped", PALETTE[1], ":")]),
    ("system (OS)", [("available", "available", PALETTE[2], "-"), ("swap_used", "swap used", PALETTE[1], "-"),
                     ("wired", "wired", PALETTE[3], "--")]),
)


def peak_source(metric: str) -> str | None:
    """What a memory column's peak counts, or None for other columns."""
    return PEAK_SOURCES.get(metric)


def truth_rows(records) -> list[dict]:
    """One row per case with an OS reading: MLX's peak, the process's, the gap, its cause, swap growth."""
    rows = []
    for r in latest_by_case(records):
        memory = r.memory or {}
        if not memory.get("divergence"):
            continue
        div, process, system = memory["divergence"], memory.get("process") or {}, memory.get("system") or {}
        flagged = div.get("flagged")
        rows.append({
            "variant": r.variant, "point": sweep_title(r.sweep), "case_id": r.case_id,
            "mlx_peak": units.mb(div.get("mlx_peak_bytes")), "process_peak": units.mb(process.get("peak_bytes")),
            "baseline": units.mb(process.get("baseline_bytes")), "gap": units.mb(div.get("gap_bytes")),
            "margin": units.mb(div.get("margin_bytes")), "swap_growth": units.mb(system.get("swap_growth_bytes")),
            "flagged": flagged, "cause": div.get("cause") or ("cannot tell" if flagged is None else "—"),
            "detail": div.get("detail") or "", "peak_source": process.get("peak_source") or "",
        })
    return rows


def case_charts(records) -> list[dict]:
    """A three-layer chart per case (flagged ones first), at most MAX_CHARTS."""
    cases = [r for r in latest_by_case(records) if (r.memory_timeline or {}).get("t")]
    cases.sort(key=lambda r: not ((r.memory or {}).get("divergence") or {}).get("flagged"))
    out = []
    for r in cases[:MAX_CHARTS]:
        div = (r.memory or {}).get("divergence") or {}
        title = r.variant + (f" · {sweep_title(r.sweep)}" if r.sweep else "")
        out.append({"title": title, "flagged": bool(div.get("flagged")), "cause": div.get("cause"),
                    "svg": Markup(three_layer_svg(r.memory_timeline))})
    return out


def three_layer_svg(timeline: dict, title: str = "") -> str:
    """Memory over time in three panels sharing the time axis: MLX, the process, the system; phases shaded."""
    t = timeline.get("t") or []
    panels = [(name, [s for s in series if _values(timeline, s[0])]) for name, series in LAYERS]
    panels = [(name, series) for name, series in panels if series]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 1.3 + 1.5 * len(panels)), sharex=True, squeeze=False)
    seen: dict[str, str] = {}
    for ax, (name, series) in zip(axes[:, 0], panels):
        for phase, start, stop in charts._phase_spans(timeline):
            ax.axvspan(start, stop, color=phase_colour(phase, seen), alpha=0.55, lw=0, zorder=0)
        for key, label, colour, style in series:
            ax.plot(t, [float("nan") if v is None else v / m.MB for v in _values(timeline, key)], style,
                    color=colour, lw=1.4, label=label, zorder=2)
        ax.set_ylabel(f"{name}\n(MB)")
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5)
    axes[0, 0].set_xlim(left=0)
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        axes[0, 0].set_title(title, loc="left", fontsize=10, color="#111827")
    if seen:
        fig.legend(handles=[Patch(color=c, alpha=0.55, label=n) for n, c in seen.items()], loc="lower right",
                   bbox_to_anchor=(1.0, 0.0), fontsize=7, title="phase", title_fontsize=7, ncol=len(seen))
    return to_svg(fig)


def _values(timeline: dict, key: str) -> list:
    values = timeline.get(key) or []
    return values if any(v is not None for v in values) else []
