"""Estimate against measurement: each case's estimated peak memory beside MLX's measured peak.

Reads only the records: the ``estimate`` each carries (``mlxbench.estimate``) and the measured
``peak_memory_bytes``, and what the process grew by over the case where the OS counted it
(``record.memory``'s ``process_growth_bytes``: the footprint or RSS peak beyond what it held before).
"""

from __future__ import annotations

import jinja2
from markupsafe import Markup

from mlxbench.results.record import latest_by_case
from mlxbench.results import units

MEASURED = "peak_memory_bytes"

_TEMPLATE = jinja2.Environment(autoescape=True).from_string("""
<section class="card" id="estimate">
  <h2>Estimated against measured peak memory</h2>
  <p class="caption">The estimate is made from the case's parameters and its model's shapes before it runs
  (mlxbench.estimate); the measured peak is MLX's own. Error = (estimate − measured) / measured.
  {% if worst %}<b>Worst error of this run: {{ worst.error }} ({{ worst.label }}).</b>{% endif %}</p>
  <div class="table-wrap"><table class="comparison"><thead><tr>
  <th>Case</th><th>Estimated (MB)</th><th>Measured (MB)</th><th>Error</th>
  {% if footprint %}<th>Process grew by (MB)</th><th>Error vs process</th>{% endif %}<th>Constants</th></tr></thead>
  <tbody>{% for r in rows %}<tr><td>{{ r.label }}</td><td class="num">{{ r.estimated }}</td>
  <td class="num">{{ r.measured }}</td><td class="num">{{ r.error }}</td>
  {% if footprint %}<td class="num">{{ r.footprint }}</td><td class="num">{{ r.footprint_error }}</td>{% endif %}
  <td>{{ r.basis }}</td></tr>{% endfor %}</tbody></table></div>
</section>
""")


def _error(estimated, measured) -> float | None:
    if estimated is None or not measured:
        return None
    return (estimated - measured) / measured


def _pct(error: float | None) -> str:
    return "—" if error is None else f"{error:+.1%}"


def rows(records) -> list[dict]:
    """One row per case that carries an estimate: estimated, measured, their error. A case whose work
    is not MLX's (no MLX peak: another framework's) is left out, as there is nothing to judge against."""
    out = []
    for r in latest_by_case(records):
        if not r.estimate or (r.ok and r.metrics.get(MEASURED) is None):
            continue
        estimated = r.estimate.get("peak_bytes")
        measured = r.metrics.get(MEASURED) if r.ok else None
        footprint = ((r.memory or {}).get("divergence") or {}).get("process_growth_bytes")
        basis = ("calibrated" if r.estimate.get("calibrated") else "not calibrated") if estimated is not None \
            else r.estimate.get("reason", "no estimate")
        out.append({"label": " · ".join(x for x in (r.variant, r.point) if x) or r.case_id,
                    "estimated": units.mb(estimated), "measured": units.mb(measured) if r.ok else f"({r.status})",
                    "error_value": _error(estimated, measured), "error": _pct(_error(estimated, measured)),
                    "footprint": units.mb(footprint), "footprint_error": _pct(_error(estimated, footprint)),
                    "basis": basis})
    return out


def worst(table: list[dict]) -> dict | None:
    judged = [r for r in table if r["error_value"] is not None]
    return max(judged, key=lambda r: abs(r["error_value"]), default=None)


def section(records) -> Markup | None:
    """The report's estimate section, or None when no record carries an estimate."""
    table = rows(records)
    if not table:
        return None
    footprint = any(r["footprint"] != "—" for r in table)
    return Markup(_TEMPLATE.render(rows=table, worst=worst(table), footprint=footprint))
