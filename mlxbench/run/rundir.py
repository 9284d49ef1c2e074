"""A run's folder: made new or resumed, with the suite and environment it was run with.

One runner works in a run folder at a time: it holds an advisory lock (``flock``) on
``runner.lock`` while the folder is open, which the kernel releases when the runner ends,
however it ends.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path

from mlxbench.errors import UserError
from mlxbench.results import store
from mlxbench.suite.schema import Suite

LOCK = "runner.lock"
# What a resume may change: which cases it runs, and words that change nothing measured.
FREE_ON_RESUME = ("command", "only", "source", "description", "metrics", "sections", store.RUN_MARKER)


@contextmanager
def open_run_dir(suite: Suite, out: str, resume: str | None) -> Iterator[Path]:
    """A new ``<out>/<suite>/<run id>/``, or the run being resumed (checked to be this suite's, run
    with these settings); this runner's alone while open."""
    run_dir = _new_run_dir(suite, out) if resume is None else _run_to_resume(suite, resume)
    with _locked(run_dir):
        if resume is None:
            # The command that made the run (the report's "reproduce" line).
            command = shlex.join(["mlxbench", *sys.argv[1:]])
            # The metric declarations travel with the run: a report never needs the workload's code.
            metrics = [m.to_dict() for m in suite.workload_cls.declared_metrics().values()]
            # So do the report sections it declares (``Workload.report_sections``).
            sections = [dict(s) for s in suite.workload_cls.report_sections]
            store.write_suite(run_dir, {**suite.to_dict(), "command": command, "metrics": metrics,
                                        "sections": sections, store.RUN_MARKER: run_dir.name})
        else:
            if note := store.end_on_whole_line(run_dir):
                print(f"mlxbench: note: {note}", file=sys.stderr)
            _widen_only(run_dir, suite)
        yield run_dir


def _new_run_dir(suite: Suite, out: str) -> Path:
    run_dir = Path(out) / suite.name / store.new_run_id()
    try:
        run_dir.mkdir(parents=True)
    except OSError as err:
        raise UserError(f"{run_dir}: could not make the run folder: {err.strerror or err}") from None
    return run_dir


def _run_to_resume(suite: Suite, resume: str) -> Path:
    """The folder ``--resume`` names, once it is known to be a run mlxbench made of this suite, as set now."""
    run_dir = Path(resume)
    if not run_dir.is_dir():
        raise UserError(f"{resume}: --resume: expected a run directory, got {'a file' if run_dir.exists() else 'nothing there'}")
    if not store.is_run_dir(run_dir):
        runs = sorted(p.name for p in run_dir.iterdir() if p.is_dir() and store.is_run_dir(p))
        got = (f"the folder of {len(runs)} run(s), the newest {run_dir / runs[-1]}" if runs
               else f"a folder without the {store.SUITE} mlxbench writes for a run")
        raise UserError(f"{resume}: --resume: expected a run folder ({suite.name}/<run id>), got {got}")
    stored = store.read_suite(run_dir)
    names = {r.suite for r in store.read_records(run_dir)} | {stored.get("name", suite.name)}
    other = names - {suite.name}
    if other:
        raise UserError(f"{resume}: --resume: expected a run of suite {suite.name!r}, got one of {min(other)!r}")
    _check_same_settings(suite, stored, resume)  # before the lock: a refused resume touches nothing
    return run_dir


def _check_same_settings(suite: Suite, stored: dict, resume: str) -> None:
    """The run's records were measured with its stored settings: a resume must use the same."""
    for key, now in suite.to_dict().items():
        if key in FREE_ON_RESUME or key not in stored:
            continue
        if (difference := _first_difference(stored[key], now, key)) is not None:
            where, was, now = difference
            raise UserError(f"{resume}: --resume: {where}: expected {was} (as the run was measured), got {now}; "
                            f"start a new run to measure with other settings")


def _widen_only(run_dir: Path, suite: Suite) -> None:
    """The run's ``only`` (the variants it was meant to run, read by the report) grows by this resume's."""
    stored = store.read_suite(run_dir)
    if not stored.get("only"):
        return  # every variant already
    only = [*stored["only"], *(v for v in suite.only if v not in stored["only"])] if suite.only else None
    if only != stored["only"]:
        store.write_suite(run_dir, {**stored, "only": only})


_MISSING = object()


def _first_difference(was, now, path: str) -> tuple[str, str, str] | None:
    """Where two settings first differ (``variants.bf16.dtype``) and both values, or None."""
    if isinstance(was, dict) and isinstance(now, dict):
        for key in dict.fromkeys([*was, *now]):
            difference = _first_difference(was.get(key, _MISSING), now.get(key, _MISSING), f"{path}.{key}")
            if difference is not None:
                return difference
        return None
    if was == now and isinstance(was, bool) == isinstance(now, bool):  # yet True == 1
        return None
    return path, *("nothing" if v is _MISSING else repr(v) for v in (was, now))


@contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    """Hold ``runner.lock`` of the run folder, or refuse: another runner is working in it."""
    refusal = lambda path: (f"{run_dir}: --resume: expected a run no other runner is working in, "  # noqa: E731
                            f"got one in use by {_holder(path)}; wait for it to end, or stop it")
    with exclusively(run_dir / LOCK, refusal) as fd:
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        # Who holds the lock only goes into the next runner's message: a full disk does not stop the run here.
        with suppress(OSError):
            os.ftruncate(fd, os.pwrite(fd, holder.encode() + b"\n", 0))
        yield


@contextmanager
def exclusively(path: Path, refusal: Callable[[Path], str]) -> Iterator[int]:
    """Hold an exclusive lock on ``path`` (made if missing) while the block runs, its descriptor given;
    UserError(``refusal(path)``) when another process holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise UserError(f"{path}: could not open the lock: {err.strerror or err}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(refusal(path)) from None
        yield fd
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {holder['pid']} on {holder['host']} since {holder['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another runner"


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
