"""Measure cases at several targets (commits, package versions), rounds interleaved, resumable.

A history or bisect keeps one ordinary run folder per target under its ``--out`` folder
(``<out>/<order>-<label>/``: suite.yaml, env.json, records.jsonl, logs/), so each target's
run has its own report and ``mlxbench db import`` reads it like any run. ``env.json`` carries a
``history`` entry: which target the run measured (commit or versions, its order in the series).
Round ``r`` of a case is a case of its own (id ``<case id>-r<r>``); a round already recorded is
never run again, so a history killed at any moment and started again with the same ``--out``
runs every (target, case, round) exactly once. Rounds interleave: round 1 of every (target,
case), then round 2 …, so a machine drifting during the sweep does not rank the targets.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from mlxbench.results import store
from mlxbench.results.record import Record
from mlxbench.run.progress import Progress
from mlxbench.run.rundir import record_environment
from mlxbench.run.runner import make_record
from mlxbench.run.supervise import run_isolated
from mlxbench.suite.schema import Case

HISTORY_KEY = "history"  # env.json's entry naming the target a run measured


class TargetProblem(Exception):
    """A target that cannot be measured at all (pins that do not install together): one line, the rest run."""


@dataclass(frozen=True)
class Target:
    """One point of a history: a commit (its copy's folder) or a set of package versions."""

    label: str  # short commit id or 'mlx==0.30.6'
    order: int  # position in the series, oldest first
    kind: str  # "commit" or "versions"
    ref: str  # the full commit id, or the pins
    workload_path: tuple[str, ...] = ()  # where the case's 'module:Class' is imported from
    python: str | None = None  # the interpreter of another environment's packages (None: this one)
    versions: dict | None = None  # what that environment holds, as its own interpreter read it

    def folder(self, out: Path) -> Path:
        """This target's run folder under ``out``."""
        safe = "".join(c if c.isalnum() or c in ".-_=" else "_" for c in self.label)
        return out / f"{self.order:03d}-{safe}"

    def describe(self) -> dict:
        return {"kind": self.kind, "label": self.label, "order": self.order, "ref": self.ref}


def round_case(case: Case, target: Target, round_no: int) -> Case:
    """The case as measured at ``target`` in round ``round_no``: its own id, the target's code."""
    return replace(case, case_id=f"{case.case_id}-r{round_no}",
                   workload_path=target.workload_path or case.workload_path)


def open_target(target: Target, out: Path, suite: dict) -> tuple[Path, str]:
    """The target's run folder, made on first use (suite, environment, history entry); (folder, env id)."""
    run_dir = target.folder(out).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / store.SUITE).exists():
        store.write_suite(run_dir, {**suite, store.RUN_MARKER: run_dir.name})
    env = store.read_env(run_dir)
    if not env:
        if target.python:
            free = {k: v for k, v in (target.versions or {}).get("versions", {}).items() if f"{k}==" not in target.label}
            env = capture_in(target.python, " ".join([target.label, *(f"(with {k}=={v})" for k, v in free.items())]))
        else:
            record_environment(run_dir, calibrate=False)
            env = store.read_env(run_dir)
        env[HISTORY_KEY] = target.describe()
        if target.versions:  # read by the environment's own interpreter, not copied from the pins
            env.update(versions=target.versions["versions"], mlx_core_version=target.versions["mlx_core_version"])
        store.write_env(run_dir, env)
    return run_dir, env["env_id"]


def capture_in(python: str, label: str) -> dict:
    """The environment as ``python`` (another environment's interpreter) sees it: its MLX, its packages."""
    import json
    import subprocess

    code = "import json\nfrom mlxbench.machine import env\nprint(json.dumps(env.capture(calibrate=False)))\n"
    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([python, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": root})
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        # An mlxbench feature this release lacks: the target cannot run, the others still do.
        raise TargetProblem(f"{label}: mlxbench cannot run with it: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextmanager
def _working_in(folder: str | None) -> Iterator[None]:
    """Run the worker from the target's copy: ``python -m`` puts its working folder first on sys.path,
    so a module of the same name in the user's own checkout cannot shadow the target's."""
    before = os.getcwd()
    if folder:
        os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def measure(case: Case, target: Target, run_dir: Path, env_id: str, progress: Progress | None = None) -> Record:
    """Run one case at one target in a fresh worker and append its record to the target's run folder."""
    if progress:
        progress.start(f"{target.label} · {case.label} · {case.case_id.rsplit('-', 1)[-1]}")
    with _working_in(target.workload_path[0] if target.workload_path else None):
        outcome = run_isolated(case, run_dir, progress.tick if progress else (lambda: None), target.python)
    record = make_record(case, outcome, run_dir.name, env_id, inline=False)
    store.append_record(run_dir, record)
    if progress:
        progress.finish(record, ("step_time_s", "peak_memory_bytes"))
    return record


def recorded(run_dir: Path) -> dict[str, Record]:
    """The records already in a target's folder, by case id (the latest of each)."""
    return {r.case_id: r for r in store.read_records(run_dir)} if (run_dir / store.RECORDS).exists() else {}


def sweep(targets: list[Target], cases: list[Case], rounds: int, out: Path, suite: dict, declared: dict,
          prepare: Callable[[Target], Target] = lambda t: t) -> tuple[dict[str, list[Record]], dict[str, str]]:
    """Every (target, case, round) not yet recorded under ``out``, rounds interleaved.

    ``prepare`` readies a target before its first case (a commit's copy, an environment); a target it
    cannot ready (TargetProblem) is skipped and the others run. (records by target label, problems by label)."""
    done = {t.label: recorded(t.folder(out).resolve()) for t in targets}
    plan = [(r, t, c) for r in range(1, rounds + 1) for t in targets for c in cases
            if f"{c.case_id}-r{r}" not in done[t.label]]
    total = len(targets) * len(cases) * rounds
    if len(plan) < total:
        print(f"{total - len(plan)} of {total} (target, case, round) already recorded under {out}; running {len(plan)}")
    progress = Progress(len(plan), declared)
    ready: dict[str, tuple[Target, Path, str]] = {}
    problems: dict[str, str] = {}
    for round_no, target, case in plan:
        if target.label in problems:
            progress.total -= 1
            continue
        if target.label not in ready:
            try:
                made = prepare(target)
                ready[target.label] = (made, *open_target(made, out, suite))
            except TargetProblem as problem:
                problems[target.label] = str(problem)
                print(f"mlxbench: {problem}; the other targets still run", flush=True)
                progress.total -= 1
                continue
        made, run_dir, env_id = ready[target.label]
        record = measure(round_case(case, made, round_no), made, run_dir, env_id, progress)
        done[target.label][record.case_id] = record
    return {t.label: list(done[t.label].values()) for t in targets}, problems


def user_case(spec: str, folder: Path, warmup: int, repeat: int, timeout_s: float) -> tuple[Case, dict]:
    """The one case of a user's ``module:Class`` workload at its defaults, and its metric declarations.

    The class is read from ``folder`` (one target's copy) and forgotten again, so that each worker
    imports the module from its own target's copy, not from this process's sys.path."""
    from mlxbench.errors import UserError
    from mlxbench.suite.lookup import workload_class
    from mlxbench.suite.schema import case_id

    if ":" not in spec:
        raise UserError(f"--workload: expected 'module:Class' (a module of the repository), got {spec!r}")
    path_before, modules_before = list(sys.path), set(sys.modules)
    try:
        cls = workload_class(spec, (str(folder),), probe=True)
        params, declared = cls.defaults(), cls.declared_metrics()
    except LookupError as err:
        raise UserError(f"--workload: {err} (looked in {folder})") from None
    finally:
        sys.path[:] = path_before
        # Only the target's own modules: an extension one of them pulled in (mlx.core) cannot be imported twice.
        for name in set(sys.modules) - modules_before:
            if _is_under(getattr(sys.modules[name], "__file__", None), folder):
                del sys.modules[name]
    name = spec.replace(":", ".")
    case = Case(suite=name, workload=spec, variant="default", sweep={}, params=params, seed=0, warmup=warmup,
                repeat=repeat, timeout_s=timeout_s, is_baseline=True, case_id=case_id(name, spec, params, 0))
    return case, declared


def _is_under(path: str | None, folder: Path) -> bool:
    return path is not None and Path(path).resolve().is_relative_to(folder.resolve())


def suite_entry(case: Case, declared: dict, command: str) -> dict:
    """What a target's ``suite.yaml`` says of a history of one user case (read by reports and the database)."""
    return {"name": case.suite, "description": f"{case.workload} at each target of a history",
            "workload": case.workload, "baseline": case.variant, "defaults": dict(case.params), "sweep": {}, "warmup": case.warmup,
            "repeat": case.repeat, "timeout": case.timeout_s, "seed": case.seed, "variants": {case.variant: {}},
            "command": command, "metrics": [m.to_dict() for m in declared.values()]}
