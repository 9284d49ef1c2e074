"""The run loop: the cases not yet ok, baselines first, each recorded the moment it ends.

Each case runs in its own worker process (mlxbench.run.supervise); each finished case
is appended to ``records.jsonl`` and flushed at once, so a run killed at any moment
keeps every finished case, and ``--resume RUN_DIR`` runs the rest.
"""

from __future__ import annotations

import json
import signal
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from mlxbench.estimate.case import for_case
from mlxbench.results import store
from mlxbench.results.record import OUTCOME_FIELDS, Record, latest_by_case
from mlxbench.run.progress import Progress
from mlxbench.run.equivalence import equivalence
from mlxbench.run.supervise import run_isolated
from mlxbench.suite.case import Case
from mlxbench.suite.schema import Suite, expand

HELD_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def run_order(cases: list[Case]) -> list[Case]:
    """Baseline cases first, so every other case can be checked against its baseline as it ends."""
    return sorted(cases, key=lambda c: not c.is_baseline)


def run_suite(suite: Suite, cases: list[Case], run_dir: Path, env_id: str, inline: bool = False) -> list[Record]:
    """Run the cases not yet ok in ``run_dir``; every case's latest record, in suite order."""
    latest = {r.case_id: r for r in latest_by_case(store.read_records(run_dir))}
    todo = [c for c in run_order(cases) if c.case_id not in latest or not latest[c.case_id].ok]
    if len(todo) < len(cases):
        print(f"{len(cases) - len(todo)} of {len(cases)} cases already ok in {run_dir}; running {len(todo)}")
    # The baseline of each sweep point, even when --only leaves it out (an earlier run may have it).
    baseline_at = {_point_key(c.sweep): c.case_id for c in expand(replace(suite, only=())) if c.is_baseline}
    declared = suite.workload_cls.declared_metrics()
    progress = Progress(len(todo), declared)
    for case in todo:
        progress.start(case.label)
        if inline:
            from mlxbench.run.worker import run_case

            outcome = run_case(case)
        else:
            outcome = run_isolated(case, run_dir, progress.tick)
        record = make_record(case, outcome, run_dir.name, env_id, inline)
        baseline = latest.get(baseline_at.get(_point_key(case.sweep), ""))
        record.equivalence = equivalence(record, baseline, suite.workload_cls.equivalent_params)
        with _signals_held():
            store.append_record(run_dir, record)
        latest[case.case_id] = record
        progress.finish(record, suite.workload_cls.headline)
    return [latest[c.case_id] for c in cases if c.case_id in latest]


@contextmanager
def _signals_held():
    """SIGINT, SIGTERM and SIGHUP wait while a record is written: a stop lands between records, not inside one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = {sig: signal.getsignal(sig) for sig in HELD_SIGNALS}
    held = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
            for sig, handler in previous.items() if handler is not None}
    try:
        yield
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])  # now handled as it would have been


def _point_key(sweep: dict) -> str:
    return json.dumps(sweep, sort_keys=True, default=str)


def make_record(case: Case, outcome: dict, run_id: str, env_id: str, inline: bool) -> Record:
    """The record of a finished case: what it was, how it ended, what it measured."""
    ended = {k: v for k, v in outcome.items() if k in OUTCOME_FIELDS}
    return Record(
        suite=case.suite, run_id=run_id, case_id=case.case_id, variant=case.variant, workload=case.workload,
        sweep=case.sweep, params=case.params, seed=case.seed, warmup=case.warmup, repeat=case.repeat,
        is_baseline=case.is_baseline, inline=inline, env_id=env_id, **ended,
        estimate=for_case(case.workload, case.params, env_id),
    )
