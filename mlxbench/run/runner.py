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
from mlxbench.results.rounds import interleaved, pool, round_id
from mlxbench.run.progress import Progress
from mlxbench.run.equivalence import equivalence
from mlxbench.run.supervise import run_isolated
from mlxbench.suite.case import Case
from mlxbench.suite.schema import Suite, expand

HELD_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def run_order(cases: list[Case]) -> list[Case]:
    """Baseline cases first, so every other case can be checked against its baseline as it ends."""
    return sorted(cases, key=lambda c: not c.is_baseline)


def run_suite(suite: Suite, cases: list[Case], run_dir: Path, env_id: str, inline: bool = False,
              rounds: int = 1) -> list[Record]:
    """Run the cases not yet ok in ``run_dir``, each in ``rounds`` interleaved rounds (results.rounds);
    every case's latest record, in suite order."""
    latest = {r.case_id: r for r in latest_by_case(store.read_records(run_dir))}
    todo = [(c, k) for c, k in interleaved(run_order(cases), rounds) if c.case_id not in latest or not latest[c.case_id].ok]
    unit = "rounds of cases" if rounds > 1 else "cases"
    if len(todo) < len(cases) * rounds:
        print(f"{len(cases) * rounds - len(todo)} of {len(cases) * rounds} {unit} already ok in {run_dir}; "
              f"running {len(todo)}")
    # The baseline of each sweep point, even when --only leaves it out (an earlier run may have it).
    baseline_at = {_point_key(c.sweep): c.case_id for c in expand(replace(suite, only=())) if c.is_baseline}
    progress = Progress(len(todo), suite.workload_cls.declared_metrics())
    for case, index in todo:
        progress.start(f"{case.label} · round {index} of {rounds}" if index else case.label)
        record = make_record(case, _outcome(case, run_dir, progress, inline), run_dir.name, env_id, inline)
        if index:
            record.round, record.rounds = index, {"of": rounds}
        else:
            _judge(record, latest, baseline_at, suite)
        _append(run_dir, record, latest)
        progress.finish(record, suite.workload_cls.headline)
    if rounds > 1:
        ran = {c.case_id for c, _ in todo}
        for case in run_order(cases):
            ids = [round_id(case.case_id, k) for k in range(1, rounds + 1)]
            if all(i in latest for i in ids) and (case.case_id not in latest or ran & set(ids)):
                record = pool(case.case_id, [latest[i] for i in ids])
                _judge(record, latest, baseline_at, suite)
                _append(run_dir, record, latest)
    return [latest[c.case_id] for c in cases if c.case_id in latest]


def _outcome(case: Case, run_dir: Path, progress: Progress, inline: bool) -> dict:
    """The outcome of one case: in this process (--inline) or in a worker of its own."""
    if inline:
        from mlxbench.run.worker import run_case

        return run_case(case)
    return run_isolated(case, run_dir, progress.tick)


def _judge(record: Record, latest: dict, baseline_at: dict, suite: Suite) -> None:
    """The record's equivalence verdict against its sweep point's baseline, where there is one."""
    baseline = latest.get(baseline_at.get(_point_key(record.sweep), ""))
    record.equivalence = equivalence(record, baseline, suite.workload_cls.equivalent_params)


def _append(run_dir: Path, record: Record, latest: dict) -> None:
    """Append the record at once, with stop signals held; it is now its case's latest."""
    with _signals_held():
        store.append_record(run_dir, record)
    latest[record.case_id] = record


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
