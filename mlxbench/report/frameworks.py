"""A paired comparison a workload declares: each case against its twin that differs in one parameter.

The workload names the section as data (``Workload.report_sections``, kind ``paired``), and the
run carries it in its ``suite.yaml``, so this renderer knows no workload: which parameter tells the
two sides apart (``param``), the value of each side (``subject``, ``reference``) and their labels,
the parameters a twin may differ in besides (``ignored``), and an outside claim to set the ratios
against (``claim``: low and high, ``claim_text``: where it comes from). Each subject case is paired
with the reference case whose parameters agree except those and the ones the reference leaves
null. The ratios are of every declared rate that is a table column: subject / reference. The
reference case's quality figures say whether the two computed the same thing.
"""

from __future__ import annotations

from mlxbench.results import metrics as m
from mlxbench.results.record import latest_by_case

KIND = "paired"


def _same_case(section: dict, subject, reference) -> bool:
    keys = (set(subject.params) | set(reference.params)) - {section["param"], *section.get("ignored", ())}
    return subject.sweep == reference.sweep and all(
        reference.params.get(k) is None or subject.params.get(k) == reference.params.get(k) for k in keys)


def _verdict(section: dict, ratio: float | None) -> str:
    claim = section.get("claim")
    if ratio is None or not claim:
        return "—" if ratio is None else ""
    low, high = claim
    return "within the claim" if low <= ratio <= high else ("below the claim" if ratio < low else "above the claim")


def _round_range(subject, reference, name: str) -> str:
    """'1.10–1.31× over 3 rounds': the ratio in each interleaved round (results.rounds), or '' without rounds."""
    a, b = (((r.rounds or {}).get("values") or {}).get(name) for r in (subject, reference))
    if not a or not b or len(a) != len(b) or not all(b):
        return ""
    ratios = [x / y for x, y in zip(a, b)]
    return f"{min(ratios):.2f}–{max(ratios):.2f}× over {len(ratios)} rounds"


def _cells(section: dict, run, subject, twin) -> list[dict]:
    cells = []
    for d in (d for d in run.metrics.values() if d.kind == "rate" and d.column):
        a, b = m.value_of(subject.metrics.get(d.name)), m.value_of(twin.metrics.get(d.name))
        ratio = a / b if a is not None and b else None
        cells.append({"label": d.label, "subject": d.display(a), "reference": d.display(b),
                      "ratio": "—" if ratio is None else f"{ratio:.2f}×", "verdict": _verdict(section, ratio),
                      "rounds": _round_range(subject, twin, d.name)})
    return cells


def ratio_rows(run, section: dict) -> list[dict]:
    """One row per subject case with a reference twin: each rate of both, their ratio, the claim's verdict."""
    param = section["param"]
    records = [r for r in latest_by_case(run.records) if r.ok and param in r.params]
    references = [r for r in records if r.params[param] == section["reference"]]
    quality = [d for d in run.metrics.values() if d.kind == "quality"]
    rows = []
    for subject in (r for r in records if r.params[param] == section["subject"]):
        twin = next((t for t in references if _same_case(section, subject, t)), None)
        if twin is None:
            continue
        checks = [f"{d.label} {d.display(twin.metrics.get(d.name))}" for d in quality
                  if m.value_of(twin.metrics.get(d.name)) is not None]
        rows.append({"subject": subject.variant, "reference": twin.variant, "point": subject.point,
                     "rates": _cells(section, run, subject, twin), "checks": "; ".join(checks)})
    return rows


def sections(run) -> list[dict]:
    """Every paired section the run declares that has at least one pair, its rows under ``rows``."""
    out = []
    for section in run.sections(KIND):
        rows = ratio_rows(run, section)
        if rows:
            out.append({**section, "rows": rows})
    return out
