"""Charts as inline SVG strings (matplotlib, Agg backend, no files written).

Every function takes plain figures (lists, dicts) and returns ``<svg …>…</svg>``
ready to be placed in an HTML page: no XML header, no external references, and
sized by its viewBox so it shrinks with the page.
"""

from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")  # no display, no GUI toolkit: charts are rendered to strings

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from mlxbench.results.metrics import MB  # noqa: E402

# One colour per variant, in the suite's order, the same in every chart of a report.
PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2",
           "#ca8a04", "#db2777", "#4b5563", "#65a30d")
# Phases are shaded in greys and pale tints so the lines on top stay readable.
# The measurement loop's own phases have fixed tints; a workload's timed phase takes the next spare.
PHASE_COLOURS = {"setup": "#e5e7eb", "warmup": "#fde68a", "teardown": "#f3f4f6"}
EXTRA_PHASE_COLOURS = ("#bfdbfe", "#bbf7d0", "#fbcfe8", "#ddd6fe", "#fed7aa", "#c7d2fe", "#a7f3d0", "#fecaca")

plt.rcParams.update({
    "svg.fonttype": "none",  # text stays text: smaller files, the browser's own font
    "text.parse_math": False,  # a variant named "$x^2$" is its name, not a formula
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#9ca3af",
    "axes.labelcolor": "#374151",
    "xtick.color": "#4b5563",
    "ytick.color": "#4b5563",
    "axes.grid": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
})


def colour(index: int) -> str:
    """The colour of the index-th variant."""
    return PALETTE[index % len(PALETTE)]


def phase_colour(name: str, seen: dict[str, str]) -> str:
    """A stable tint per phase name (known names have their own; others take the next spare)."""
    if name not in seen:
        spare = sum(n not in PHASE_COLOURS for n in seen)
        seen[name] = PHASE_COLOURS.get(name) or EXTRA_PHASE_COLOURS[spare % len(EXTRA_PHASE_COLOURS)]
    return seen[name]


def to_svg(fig) -> str:
    """Render a figure to an inline, self-sizing SVG string and close it."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML declaration and DOCTYPE
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    # Width and height come from the page (CSS), the aspect ratio from the viewBox.
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="chart" role="img"', svg, count=1)
    return svg


def _phase_spans(timeline: dict) -> list[tuple[str, float, float]]:
    """(name, start, end) of each phase; a phase lasts until the next starts or the timeline ends."""
    phases = timeline.get("phases") or []
    t = timeline.get("t") or [0.0]
    end = t[-1] if t else 0.0
    spans = []
    for i, p in enumerate(phases):
        stop = phases[i + 1]["start"] if i + 1 < len(phases) else end
        spans.append((p["name"], p["start"], max(stop, p["start"])))
    return spans


def timelines_svg(series: list[tuple[str, dict]], key: str = "active",
                  ylabel: str = "MLX active memory (MB)") -> str:
    """Variants' memory timelines overlaid; below, one strip per variant shows its phases."""
    rows = max(len(series), 1)
    fig, (ax, strip) = plt.subplots(
        2, 1, figsize=(9, 3.4 + 0.22 * rows), sharex=True,
        gridspec_kw={"height_ratios": [5, 0.45 * rows], "hspace": 0.08},
    )
    seen: dict[str, str] = {}
    for i, (label, tl) in enumerate(series):
        values = tl.get(key) or []
        ax.plot(tl.get("t", [])[: len(values)], [v / MB for v in values], color=colour(i), lw=1.5, label=label)
        for name, start, stop in _phase_spans(tl):
            strip.broken_barh([(start, stop - start)], (rows - 1 - i + 0.1, 0.8),
                              color=phase_colour(name, seen), lw=0)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="variant", title_fontsize=8)
    strip.set_yticks([rows - 1 - i + 0.5 for i in range(len(series))], [s[0] for s in series], fontsize=7)
    strip.set_ylim(0, rows)
    strip.grid(False)
    strip.set_xlabel("time since the case started (s)")
    strip.set_xlim(left=0)
    if seen:
        strip.legend(handles=[Patch(color=c, label=n) for n, c in seen.items()], loc="upper left",
                     bbox_to_anchor=(1.01, 1.6), fontsize=7, title="phase", title_fontsize=7)
    return to_svg(fig)


def bars_svg(labels: list[str], panels: list[dict]) -> str:
    """Horizontal bars per variant, one panel per metric.

    A panel is ``{"title", "values": [float|None], "texts": [str], "low": [..]|None, "high": [..]|None}``;
    None values (failed cases) are written as "failed" instead of a bar.
    """
    n = len(labels)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 0.9 + 0.38 * n), sharey=True,
                             squeeze=False)
    y = list(range(n))[::-1]
    for ax, panel in zip(axes[0], panels):
        values = panel["values"]
        ends = [h if h is not None else v for v, h in zip(values, panel.get("high") or values)]
        present = [v for v in ends if v is not None]
        top = max(present) if present else 1.0
        for i, v in enumerate(values):
            if v is None:
                ax.text(0, y[i], "  failed", va="center", ha="left", color="#b91c1c", fontsize=8)
                continue
            ax.barh(y[i], v, color=colour(i), height=0.62, zorder=2)
            if panel.get("low") and panel["low"][i] is not None:
                ax.errorbar(v, y[i], xerr=[[v - panel["low"][i]], [panel["high"][i] - v]], fmt="none",
                            ecolor="#111827", elinewidth=1, capsize=2.5, zorder=3)
            right = panel["high"][i] if panel.get("high") and panel["high"][i] is not None else v
            ax.text(right + top * 0.015, y[i], panel["texts"][i], va="center", fontsize=7.5, color="#374151")
        ax.set_title(panel["title"], loc="left", fontsize=9.5, color="#111827")
        ax.set_xlim(0, top * 1.25)
        ax.grid(axis="y", visible=False)
    axes[0][0].set_yticks(y, labels)
    return to_svg(fig)


def sweep_svg(lines: list[tuple[str, list[float], list[float | None]]], xlabel: str, ylabel: str,
              log_x: bool = False) -> str:
    """A metric against a swept axis, one line per series: ``(label, xs, ys)``; None ys are gaps."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for i, (label, xs, ys) in enumerate(lines):
        ax.plot(xs, [float("nan") if v is None else v for v in ys], "-o", color=colour(i), lw=1.6, ms=4,
                label=label)
    if log_x:
        ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({x for _, xs, _ in lines for x in xs}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.legend(loc="best", fontsize=7.5)
    return to_svg(fig)


def pareto_svg(points: list[dict], xlabel: str, ylabel: str) -> str:
    """Memory against time, one point per configuration; the Pareto front joined and filled.

    A point is ``{"label", "x", "y", "front": bool, "colour_index": int, "group": str}``; the front
    of each group (a sweep point) is joined separately.
    """
    fig, ax = plt.subplots(figsize=(9, 3.8))
    fronts = 0
    for group in dict.fromkeys(p.get("group", "") for p in points):
        front = sorted((p for p in points if p["front"] and p.get("group", "") == group), key=lambda p: p["x"])
        if len(front) > 1:
            ax.plot([p["x"] for p in front], [p["y"] for p in front], "-", color="#111827", lw=1, alpha=0.5,
                    zorder=1, label=None if fronts else "Pareto front")
            fronts += 1
    xs, ys = [p["x"] for p in points], [p["y"] for p in points]
    x_span, y_span = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    placed: list[tuple[float, float]] = []
    for p in points:
        c = colour(p.get("colour_index", 0))
        ax.scatter(p["x"], p["y"], s=46, zorder=2, color=c if p["front"] else "white", edgecolors=c,
                   linewidths=1.6)
        # Points close together would print their labels over each other: step each one down a line.
        near = sum(abs(p["x"] - x) / x_span < 0.12 and abs(p["y"] - y) / y_span < 0.06 for x, y in placed)
        placed.append((p["x"], p["y"]))
        ax.annotate(p["label"], (p["x"], p["y"]), xytext=(5, 4 - 10 * near), textcoords="offset points",
                    fontsize=7.5, color="#1f2937" if p["front"] else "#6b7280")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.margins(x=0.15, y=0.15)
    if fronts:
        ax.legend(loc="best", fontsize=8)
    return to_svg(fig)
