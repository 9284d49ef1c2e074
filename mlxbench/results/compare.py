"""What got better or worse between two runs of a suite, and whether the change is real.

Only the figures a run declares as judged are judged (diagnostics such as the MLX
cache or other processes' CPU share never are), each by a rule it can be held to:

- a timing sampled at every step: a two-sided Mann–Whitney U test on the samples
  (p < 0.01) and a change beyond the threshold. With too few samples for p < 0.01 to
  be reachable at all (3 + 3 samples: the smallest p is 0.1) the comparison says so
  and falls back to a rule that can still see a large change: the two sides' ranges
  do not overlap and the change passes the threshold;
- a rate judged through the timing it divides, on that timing's samples;
- an exact figure (MLX's peak memory, a model's size): the threshold alone.

A case that stopped finishing is a regression; a figure that vanished or is no
longer a number cannot be judged, and the comparison says which.
"""

from __future__ import annotations

from mlxbench import stats
from mlxbench.results.metrics import Metric, samples_of, value_of
from mlxbench.results.record import Record, latest_by_case, sweep_title
from mlxbench.results.run import Run

DEFAULT_THRESHOLD_PCT = 5.0
SIGNIFICANCE_P = stats.SIGNIFICANCE_P


def _samples(spec: Metric, figures: dict) -> list[float] | None:
    """The samples a figure is judged on: its own, or those of the timing a rate divides."""
    return samples_of(figures.get(spec.of if spec.kind == "rate" else spec.name))


def _sampled_verdict(big: bool, base: list[float], new: list[float]) -> tuple[bool, float | None, str, str]:
    """(significant, p, test, note) for a figure with samples on both sides."""
    differs, p, test, note = stats.differ(base, new, SIGNIFICANCE_P)
    return big and bool(differs), p, test, note


def _row(**values) -> dict:
    """One compared figure as the output lists it: what was compared, how, and the verdict."""
    return {"metric": "", "label": "", "unit": "", "scale": 1.0, "base": None, "new": None, "ratio": None,
            "change": None, "p": None, "test": "none", "note": "", "better": None, "significant": False,
            "verdict": "cannot judge", **values}


def judge(spec: Metric, base_figures: dict, new_figures: dict, threshold: float) -> dict:
    """One judged figure of one case: ratio new/base, the test it could be given, and the verdict."""
    base, new = value_of(base_figures.get(spec.name)), value_of(new_figures.get(spec.name))
    out = _row(metric=spec.name, label=spec.label, unit=spec.unit, scale=spec.scale, base=base, new=new,
               note=spec.note, better=spec.better)
    if base is None or new is None:
        side = "base" if base is None else "new"
        figure = (base_figures if base is None else new_figures).get(spec.name)
        out["note"] = f"{'missing' if figure is None else 'not a number'} in the {side} run"
        return out
    change = stats.relative_change(new, base)
    out.update(change=change, ratio=new / base if base else (1.0 if new == base else None))
    big = (change is not None and abs(change) > threshold) or (base == 0 and new != 0)
    base_samples, new_samples = _samples(spec, base_figures), _samples(spec, new_figures)
    if spec.kind in ("timing", "rate"):
        if not (base_samples and new_samples):
            out["note"] = "no samples to test: one figure a side"
            return out
        significant, p, test, note = _sampled_verdict(big, base_samples, new_samples)
        if test == "none":
            out["note"] = note
            return out
        out.update(p=p, test=test, note=note or out["note"])
    else:
        significant = big
        out["test"] = "exact"
    out["significant"] = significant
    if not significant:
        out["verdict"] = "same"
    elif spec.better is None:
        out["verdict"] = "changed"
    else:
        worse = (new > base) if spec.better == "lower" else (new < base)
        out["verdict"] = "regression" if worse else "improvement"
    return out


def compare_case(base: Record, new: Record, judged: list[Metric], threshold: float) -> dict:
    """Every judged figure of one case, or its change of status."""
    out = {"case_id": base.case_id, "variant": new.variant or base.variant,
           "sweep": sweep_title(new.sweep or base.sweep), "base_status": base.status,
           "new_status": new.status, "metrics": []}
    if not base.ok or not new.ok:
        # A case that stopped finishing is a regression; one that started finishing, an improvement.
        verdict = "regression" if base.ok else "improvement" if new.ok else "same"
        out["metrics"].append(_row(metric="status", label="status", base=base.status, new=new.status,
                                   test="status", note=new.reason or base.reason,
                                   significant=verdict != "same", verdict=verdict))
        return out
    for spec in judged:
        if spec.name in base.metrics or spec.name in new.metrics:
            out["metrics"].append(judge(spec, base.metrics, new.metrics, threshold))
    return out


def _brief(r: Record) -> dict:
    return {"case_id": r.case_id, "variant": r.variant, "sweep": r.point, "status": r.status}


def compare_runs(base_run: Run, new_run: Run, threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> dict:
    """Cases matched by case_id; cases found in only one run listed, never dropped."""
    base = {r.case_id: r for r in latest_by_case(base_run.records)}
    new = {r.case_id: r for r in latest_by_case(new_run.records)}
    declared = {**new_run.metrics, **base_run.metrics}
    judged = [spec for spec in declared.values() if spec.judged]
    cases = [compare_case(base[c], new[c], judged, threshold_pct / 100) for c in base if c in new]

    def having(verdict: str) -> list[dict]:
        return [{"case_id": c["case_id"], "variant": c["variant"], "sweep": c["sweep"], **x}
                for c in cases for x in c["metrics"] if x["verdict"] == verdict]

    present = {name for r in [*base.values(), *new.values()] for name in r.metrics}
    return {"threshold_pct": threshold_pct, "significance_p": SIGNIFICANCE_P, "cases": cases,
            "only_in_base": [_brief(r) for c, r in base.items() if c not in new],
            "only_in_new": [_brief(r) for c, r in new.items() if c not in base],
            "regressions": having("regression"), "improvements": having("improvement"),
            "cannot_judge": having("cannot judge"),
            "not_judged": [{"metric": s.name, "why": s.note or s.kind} for s in declared.values()
                           if not s.judged and s.name in present]}


def exit_status(comparison: dict) -> int:
    """1 when any significant regression, else 0."""
    return 1 if comparison["regressions"] else 0
