"""Run one case in this process and hand back its outcome, whatever happens.

The runner starts ``python -m mlxbench.run.worker CASE.json OUTCOME.json`` in a fresh
process per case (``--inline`` calls :func:`run_case` in its own process instead).
The outcome goes to a file, not stdout, which the workload may print to. The
measurement itself is mlxbench.run.measure's loop, the one every caller uses.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path


import mlxbench  # noqa: F401  (loads the optimized BLAS before mlx.core)
import mlx.core as mx

from mlxbench.machine import device
from mlxbench.machine import profiler
from mlxbench.results.record import blank_outcome
from mlxbench.run import measure as loop
from mlxbench.suite.case import Case
from mlxbench.suite.lookup import workload_class
from mlxbench.workloads.base import Workload
from mlxbench.workloads.tracker import Tracker

TIMELINE_POINTS = 2000
TRACEBACK_LINES = 15
# Messages by which MLX, C++ and the OS say an allocation failed.
OOM_PATTERN = re.compile(r"out of memory|bad_alloc|insufficient memory|unable to allocate|"
                         r"attempting to allocate|cannot allocate memory|MemoryError", re.IGNORECASE)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception says memory ran out (MemoryError, std::bad_alloc, MLX malloc failures)."""
    return isinstance(exc, MemoryError) or bool(OOM_PATTERN.search(f"{type(exc).__name__}: {exc}"))


def error_of(exc: BaseException) -> dict:
    """The record's ``error``: the exception in one line and the last lines of its traceback."""
    lines = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).splitlines()
    message = f"{type(exc).__name__}: {exc}".strip()
    return {"message": message.splitlines()[0] if message else type(exc).__name__,
            "traceback": "\n".join(lines[-TRACEBACK_LINES:])}


def jsonable(value):
    """``value`` with numpy / MLX scalars turned into plain Python numbers, so it round-trips JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy and MLX scalars
        return value.item()
    return str(value)


def build(case: Case) -> Workload:
    """The case's workload: the implementation its workload class picks for its parameters (another
    framework's, where it names one), built with the case's parameters and seed."""
    params = dict(case.params)
    return workload_class(case.workload, case.workload_path).implementation(params)(params, case.seed)


def measure(case: Case, outcome: dict, isolated: bool, trackers: tuple[Tracker, ...] = ()) -> None:
    """Run the case's loop, filling ``outcome`` as figures become known (so a failure keeps them)."""
    wl = build(case)
    mx.random.seed(case.seed)
    sampler = profiler.MemorySampler(interval_s=loop.SAMPLE_INTERVAL_S)
    try:
        measured = loop.measure(wl, case.warmup, case.repeat, sampler=sampler, isolated=isolated,
                                trackers=trackers)
        outcome["metrics"] = measured.metrics
        outcome["leak"] = measured.leak
        outcome["memory"] = measured.memory
        outcome["equivalence_values"] = wl.equivalence()
    finally:
        sampler.stop()  # a no-op when the loop already stopped it
        outcome["memory_timeline"] = sampler.timeline(max_points=TIMELINE_POINTS)
        wl.teardown()


def run_case(case: Case, isolated: bool = False, trackers: tuple[Tracker, ...] = ()) -> dict:
    """Run ``case`` in this process: the outcome part of its record, whatever happens.

    ``isolated``: this process runs nothing else (a worker), so its own peak RSS is the case's.
    ``trackers``: the caller's own, around the timed steps (a rank's progress).
    Keys: status, error, metrics, memory_timeline, leak, memory, equivalence_values, started_at, duration_s.
    """
    outcome = blank_outcome(datetime.now(timezone.utc).isoformat(timespec="seconds"))
    start = time.perf_counter()
    device.choose()  # the same device env.json reports: CPU where the GPU is virtual
    try:
        measure(case, outcome, isolated, trackers)
    except Exception as exc:  # a failed case is a result: record it, the sweep goes on
        outcome["status"] = "oom" if is_out_of_memory(exc) else "error"
        outcome["error"] = error_of(exc)
        outcome["metrics"] = {}
    outcome["duration_s"] = time.perf_counter() - start
    return jsonable(outcome)


def _exit_when_orphaned(parent: int) -> None:
    """Stop this worker if the runner dies (even by kill -9): nobody would read its result."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, name="mlxbench-orphan-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m mlxbench.run.worker CASE.json OUTCOME.json", file=sys.stderr)
        return 2
    case_path, outcome_path = map(Path, argv)
    _exit_when_orphaned(os.getppid())
    case = Case.from_dict(json.loads(case_path.read_text(encoding="utf-8")))
    outcome = run_case(case, isolated=True)
    # Written whole, then renamed: the runner never reads half an outcome.
    partial = outcome_path.with_suffix(".part")
    partial.write_text(json.dumps(outcome, allow_nan=True), encoding="utf-8")
    os.replace(partial, outcome_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
