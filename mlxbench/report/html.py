"""Self-contained HTML pages: jinja2 templates, inline CSS, charts inline as SVG.

Nothing on a page is fetched: no scripts, no fonts, no images by URL, so a report
opens the same offline, in a CI artifact viewer, or printed.
"""

from __future__ import annotations

import jinja2
from markupsafe import Markup

import mlxbench
from mlxbench.report import charts, tables
from mlxbench.report import metrics as m

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("mlxbench.report", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


def _render(template: str, **context) -> str:
    return _ENV.get_template(template).render(version=mlxbench.__version__, **context)


def _mb(value) -> str:
    return m.number(None if value is None else value / m.MB)


def render_profile(profile: dict) -> str:
    """The page of ``mlxbench profile``: the memory timeline with phases shaded and a phase table.

    ``profile`` = {"timeline", "peak_bytes", "peak_rss_bytes", "env", "script", "command"}.
    """
    timeline = profile.get("timeline") or {}
    t = timeline.get("t") or []
    chart = Markup(charts.profile_timeline_svg(timeline)) if t else None
    phases = [
        {"name": p["name"], "start": f"{p['start_s']:.3f}", "duration": f"{p['duration_s']:.3f}",
         "active": _mb(p["peak_active_bytes"]), "rss": _mb(p["peak_rss_bytes"])}
        for p in tables.phase_summary(timeline)
    ]
    return _render(
        "profile.html.j2",
        script=profile.get("script") or "script",
        command=profile.get("command") or "",
        peak_mb=_mb(profile.get("peak_bytes")),
        peak_rss_mb=_mb(profile.get("peak_rss_bytes")),
        duration=m.number(t[-1] if t else 0.0),
        samples=len(t),
        chart=chart,
        phases=phases,
        env_rows=tables.env_rows(profile.get("env") or {}),
    )
