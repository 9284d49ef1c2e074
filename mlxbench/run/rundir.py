"""A run's folder: made new or resumed, with the suite and environment it was run with."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from mlxbench.errors import UserError
from mlxbench.results import store
from mlxbench.suite.schema import Suite


def open_run_dir(suite: Suite, out: str, resume: str | None) -> Path:
    """A new ``<out>/<suite>/<run id>/``, or the run being resumed (checked to be this suite's)."""
    if resume is None:
        run_dir = Path(out) / suite.name / store.new_run_id()
        run_dir.mkdir(parents=True)
    else:
        run_dir = Path(resume)
        if not run_dir.is_dir():
            raise UserError(f"{resume}: --resume: expected a run directory, got {'a file' if run_dir.exists() else 'nothing there'}")
        other = {r.suite for r in store.read_records(run_dir)} - {suite.name}
        if other:
            raise UserError(f"{resume}: --resume: expected a run of suite {suite.name!r}, got one of {sorted(other)[0]!r}")
    # The command that made the run (the report's "reproduce" line); a resume keeps the first one.
    command = store.read_suite(run_dir).get("command") if resume else None
    command = command or shlex.join(["mlxbench", *sys.argv[1:]])
    # The metric declarations travel with the run: a report never needs the workload's code.
    metrics = [m.to_dict() for m in suite.workload_cls.declared_metrics().values()]
    store.write_suite(run_dir, {**suite.to_dict(), "command": command, "metrics": metrics})
    return run_dir


def record_environment(run_dir: Path, calibrate: bool) -> str:
    """Capture the environment into ``env.json`` (kept as first written on resume); its env_id."""
    from mlxbench.machine import env

    first = store.read_env(run_dir)
    current = env.capture(calibrate=calibrate and not first)
    import mlx.core as mx

    mx.clear_cache()  # the calibration's buffers: the runner should hold no memory the cases could use
    if not first:
        store.write_env(run_dir, current)
    elif first.get("env_id") != current["env_id"]:
        print(f"mlxbench: note: resuming on another environment ({current['env_id']}, "
              f"run began on {first.get('env_id')}); each record names its own", file=sys.stderr)
    return current["env_id"]
