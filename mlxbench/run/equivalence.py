"""Does a variant compute what its baseline computes? Judged from the first step's figures."""

from __future__ import annotations

from mlxbench.results.record import Record


def equivalence(record: Record, baseline: Record | None, equivalent_params: frozenset[str]) -> dict | None:
    """Does a variant that differs from its baseline only in ``equivalent_params`` compute the same?

    None for the baseline itself, for variants that change what is computed, and when
    either side has no figures to compare (it failed, or its workload gives none).
    """
    if record.is_baseline or baseline is None or not record.ok or not baseline.ok:
        return None
    keys = set(record.params) | set(baseline.params)
    changed = {k for k in keys if record.params.get(k) != baseline.params.get(k)}
    values, base = record.equivalence_values, baseline.equivalence_values
    if not changed or not changed <= equivalent_params or not values or not base:
        return None
    rtol = max(float(values.get("rtol", 0.0)), float(base.get("rtol", 0.0)))
    mismatches = [name for name in base if name != "rtol" and not _close(values.get(name), base[name], rtol)]
    return {"baseline_case_id": baseline.case_id, "matches": not mismatches, "mismatches": mismatches,
            "values": values, "baseline_values": base, "rtol": rtol}


def _close(value, reference, rtol: float) -> bool:
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, reference)):
        return value == reference
    return abs(value - reference) <= rtol * max(abs(value), abs(reference))
