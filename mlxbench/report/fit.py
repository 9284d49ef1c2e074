"""The page of ``mlxbench fit``: the answer, the Pareto front of memory against speed, every candidate."""

from __future__ import annotations

from markupsafe import Markup

from mlxbench.report import charts, tables
from mlxbench.report.html import _render
from mlxbench.results import units


def render_fit(fit: dict) -> str:
    """``fit`` = {"title", "run_id", "answer", "objective", "budget", "margin", "candidates": [
    {"label", "tags", "status", "speed", "estimate_bytes", "mlx_peak_bytes", "footprint_bytes"}]}."""
    rows, points = [], []
    for c in fit["candidates"]:
        ran = c["speed"] is not None and c["footprint_bytes"]
        error = ((c["estimate_bytes"] - c["mlx_peak_bytes"]) / c["mlx_peak_bytes"]
                 if c["estimate_bytes"] and c["mlx_peak_bytes"] else None)
        rows.append({"label": c["label"], "tags": ", ".join(c["tags"]) or "search", "status": c["status"],
                     "speed": "—" if c["speed"] is None else f"{c['speed']:,.1f}",
                     "estimate": units.mb(c["estimate_bytes"]), "mlx_peak": units.mb(c["mlx_peak_bytes"]),
                     "error": "—" if error is None else f"{error:+.1%}", "footprint": units.mb(c["footprint_bytes"])})
        if ran and c["status"] == "ok":
            points.append({"label": c["label"], "x": c["speed"], "y": c["footprint_bytes"] / 1e6,
                           "colour_index": len(points), "group": ""})
    front = tables.pareto_front([(p["x"], p["y"]) for p in points], "higher", "lower")
    for p, on in zip(points, front):
        p["front"] = on
    pareto = Markup(charts.pareto_svg(points, fit["objective"], "Peak footprint (MB)")) if len(points) > 1 else None
    return _render("fit.html.j2", title=fit["title"], run_id=fit["run_id"], answer=fit["answer"],
                   objective=fit["objective"], budget=fit["budget"], margin=fit["margin"], pareto=pareto,
                   candidates=rows, measured=sum(c["speed"] is not None for c in fit["candidates"]),
                   skipped=sum(c["status"].startswith("skipped") for c in fit["candidates"]))

