"""``mlxbench compare BASE NEW``: what got better or worse between two runs, and is it real.

A change counts (is *significant*) only when it exceeds the threshold (default 5%)
and, for timed figures, a Mann–Whitney U test on the raw samples gives p < 0.01.
Memory and other deterministic figures have no spread to test: the threshold alone
decides. Exit status 1 when any significant change is a regression, 0 otherwise,
2 on bad input, so a CI job can gate on it.
"""

from __future__ import annotations


from mlxbench import stats
from mlxbench.results import metrics as m
from mlxbench.report.tables import reason_of, sweep_title
from mlxbench.results.store import latest_by_case

DEFAULT_THRESHOLD_PCT = 5.0
SIGNIFICANCE_P = 0.01
def samples_for(metric: str, figures: dict) -> list[float] | None:
    """The raw timed samples behind a metric: its own, or those of the timing it is derived from."""
    for name in (metric, m.timing_behind(metric)):
        figure = figures.get(name) if name else None
        if isinstance(figure, dict) and figure.get("samples"):
            return figure["samples"]
    return None


def compare_metric(metric: str, base_figures: dict, new_figures: dict, threshold: float) -> dict | None:
    """One metric of one case: ratio new/base, p-value where it has samples, and the verdict."""
    base, new = m.value_of(base_figures.get(metric)), m.value_of(new_figures.get(metric))
    if base is None or new is None:
        return None
    change = stats.relative_change(new, base)
    ratio = new / base if base else (1.0 if new == base else None)  # None: from zero, no ratio
    base_samples, new_samples = samples_for(metric, base_figures), samples_for(metric, new_figures)
    p = stats.mann_whitney_p(base_samples, new_samples) if base_samples and new_samples else None
    big = change is not None and abs(change) > threshold or (base == 0 and new != 0)
    significant = bool(big and (p is None or p < SIGNIFICANCE_P))
    better = m.direction(metric)
    if not significant:
        verdict = "same"
    elif better is None:
        verdict = "changed"
    else:
        worse = (new > base) if better == "lower" else (new < base)
        verdict = "regression" if worse else "improvement"
    return {"metric": metric, "base": base, "new": new, "ratio": ratio, "change": change, "p": p,
            "tested": "mann-whitney" if p is not None else "threshold", "better": better,
            "significant": significant, "verdict": verdict}


def compare_case(base: dict, new: dict, threshold: float) -> dict:
    """Every metric the two records of one case share, plus a status change if there is one."""
    out = {"case_id": base.get("case_id"), "variant": new.get("variant") or base.get("variant"),
           "sweep": sweep_title(new.get("sweep") or base.get("sweep") or {}),
           "base_status": base.get("status"), "new_status": new.get("status"), "metrics": []}
    if base.get("status") != "ok" or new.get("status") != "ok":
        # A case that stopped finishing is a regression; one that started finishing, an improvement.
        verdict = ("regression" if base.get("status") == "ok" else
                   "improvement" if new.get("status") == "ok" else "same")
        out["metrics"].append({"metric": "status", "base": base.get("status"), "new": new.get("status"),
                               "ratio": None, "change": None, "p": None, "tested": "status", "better": None,
                               "significant": verdict != "same", "verdict": verdict,
                               "reason": reason_of(new) or reason_of(base)})
        return out
    base_figures, new_figures = base.get("metrics") or {}, new.get("metrics") or {}
    for metric in base_figures:
        if metric in new_figures:
            result = compare_metric(metric, base_figures, new_figures, threshold)
            if result is not None:
                out["metrics"].append(result)
    return out


def compare_runs(base_records: list[dict], new_records: list[dict],
                 threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> dict:
    """Cases matched by case_id; cases found in only one run listed, never dropped."""
    base = {r.get("case_id"): r for r in latest_by_case(base_records)}
    new = {r.get("case_id"): r for r in latest_by_case(new_records)}
    threshold = threshold_pct / 100

    def brief(r: dict) -> dict:
        return {"case_id": r.get("case_id"), "variant": r.get("variant"),
                "sweep": sweep_title(r.get("sweep") or {}), "status": r.get("status")}

    cases = [compare_case(base[c], new[c], threshold) for c in base if c in new]

    def having(verdict: str) -> list[dict]:
        return [{"case_id": c["case_id"], "variant": c["variant"], "sweep": c["sweep"], **x}
                for c in cases for x in c["metrics"] if x["verdict"] == verdict]

    return {"threshold_pct": threshold_pct, "significance_p": SIGNIFICANCE_P, "cases": cases,
            "only_in_base": [brief(r) for c, r in base.items() if c not in new],
            "only_in_new": [brief(r) for c, r in new.items() if c not in base],
            "regressions": having("regression"), "improvements": having("improvement")}


def exit_status(comparison: dict) -> int:
    """1 when any significant regression, else 0."""
    return 1 if comparison["regressions"] else 0
