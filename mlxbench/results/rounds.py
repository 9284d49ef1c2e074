"""Interleaved rounds (asv's ``--interleave-rounds``): each case measured in N separate processes,
round 1 of every case, then round 2, …, so a machine that drifts during a run slows every case alike
instead of whichever ran in the slow minutes.

Each round is a record of its own (``round`` set, a case id of its own), appended as it ends, so a
resumed run keeps the finished rounds. When every round of a case is in, the case's pooled record
(its own case id, ``round`` null) holds every round's samples as one timing summary and, in
``rounds``, each figure's value round by round: the round-to-round spread readers show. Readers of
a run (``results.run.load_run``) see the pooled records only.

Every round scheme in mlxbench orders its rounds by the one rule of ``stats.alternating`` (ABBA):
``run --rounds`` here, ``fit``'s runoff and the ``benchmarks/`` scripts, which measure their contenders
in rounds without making records of them. ``history`` keeps round cases of its own
(``history/sweep.round_case``), whose ids predate these.
"""

from __future__ import annotations

import statistics
from dataclasses import replace

from mlxbench import stats
from mlxbench.results.metrics import samples_of, value_of
from mlxbench.results.record import Record

# What a pooled record takes from its first round as it is: one round's account of the process.
FIRST_ROUND_FIELDS = ("memory_timeline", "leak", "memory", "equivalence_values", "distributed", "estimate",
                      "started_at")


def round_id(case_id: str, index: int) -> str:
    """The case id of round ``index`` (1-based) of the case ``case_id``."""
    return f"{case_id}-round{index}"


def interleaved(cases: list, rounds: int) -> list[tuple[object, int]]:
    """(round case, round index) in run order: round 1 of every case (in the order given), then round 2 in
    the reverse order, … (``stats.alternating``, ABBA: a drift that is linear in time falls on every case
    alike, which forward-only rounds leave on the last case).

    A round case is the case with the round's own case id; with ``rounds`` 1, the cases themselves.
    """
    if rounds <= 1:
        return [(case, 0) for case in cases]
    return [(replace(case, case_id=round_id(case.case_id, k)), k) for k, case in stats.alternating(cases, rounds)]


def rounds_in(records: list[Record]) -> int:
    """How many rounds the run these records come from asked for (1: no rounds)."""
    return max([(r.rounds or {}).get("of", 1) for r in records], default=1)


def pool(case_id: str, round_records: list[Record]) -> Record:
    """The pooled record of a case from its rounds' records (in round order): every round's samples in one
    summary, each other figure the median of its rounds, the rounds' own values in ``rounds``.

    A case with a failed round fails as that round did: the pooled figures would hide which round ran.
    """
    first = round_records[0]
    failed = next((r for r in round_records if not r.ok), None)
    pooled = replace(first, case_id=case_id, round=None, duration_s=sum(r.duration_s or 0 for r in round_records))
    per_round = {name: [value_of(r.metrics.get(name)) for r in round_records] for name in first.metrics}
    pooled.rounds = {"of": len(round_records), "case_ids": [r.case_id for r in round_records],
                     "started_at": [r.started_at for r in round_records],
                     "values": {k: v for k, v in per_round.items() if all(x is not None for x in v)}}
    if failed is not None:
        pooled.status, pooled.error, pooled.metrics = failed.status, failed.error, {}
        return pooled
    pooled.metrics = {name: _pooled(name, round_records) for name in first.metrics}
    return pooled


def _pooled(name: str, round_records: list[Record]):
    """One figure over the rounds: a timing summary of every round's samples, else the rounds' median."""
    figures = [r.metrics.get(name) for r in round_records]
    samples = [samples_of(f) for f in figures]
    if all(samples):
        return stats.summarize([s for some in samples for s in some])
    values = [value_of(f) for f in figures]
    if all(v is not None for v in values) and not any(isinstance(f, bool) for f in figures):
        return float(statistics.median(values))
    return figures[0]


def round_range(record: Record, name: str) -> tuple[float, float] | None:
    """The lowest and highest round value of figure ``name`` of a pooled record, or None without rounds."""
    values = ((record.rounds or {}).get("values") or {}).get(name)
    return (min(values), max(values)) if values else None
