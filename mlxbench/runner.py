"""``mlxbench run``: every case of a suite in its own fresh process, and never a result lost.

- Each case runs in ``python -m mlxbench.worker`` (a new interpreter, not a fork), in
  its own process group, so one case's memory, compiled graphs or crash never reach
  another's figures, and a timeout can stop the case and anything it started. The
  timeout counts from the worker's start, imports included: it bounds the case's wall time.
- Each finished case is appended to ``records.jsonl`` and flushed at once, so a run
  killed at any moment keeps every finished case; ``--resume RUN_DIR`` runs the rest.
- How a case ended is told from the evidence: the worker's own outcome (ok, error,
  oom from an allocation failure), or else the process's end: past its timeout →
  ``timeout``; resident memory past the suite's ``memory_limit_mb`` → ``oom``; killed
  by a signal → ``error``, or ``oom`` when the machine was out of memory at that moment
  (the kernel's OOM-kill counter rose, or less than 5% of memory was free).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import psutil

from mlxbench import results
from mlxbench.errors import UserError
from mlxbench.progress import Progress, table
from mlxbench.suite import Case, Suite, describe, expand, load

POLL_S = 0.1  # how often a running case's clock and memory are checked
LOG_LINES = 15  # lines of a crashed worker's output kept as its traceback
LOW_MEMORY_FRACTION = 0.05  # free memory below this when a case is killed: evidence of OOM
LOGS = "logs"  # each case's worker output: logs/<case id>.log


def add_arguments(parser) -> None:
    parser.add_argument("suite", help="the suite file (YAML)")
    parser.add_argument("--profile", default=None,
                        help="a profile of the suite (e.g. quick); full: the suite as written; "
                             "auto: quick when MLX runs on the CPU and the suite has one")
    parser.add_argument("--set", dest="sets", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override warmup, repeat, timeout, seed, memory_limit_mb or a workload "
                             "parameter of every variant (value read as YAML)")
    parser.add_argument("--only", action="extend", nargs="+", default=[], metavar="VARIANT",
                        help="run only these variants")
    parser.add_argument("--out", default="results", help="results root (default: results)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue this run: run only the cases not yet ok")
    parser.add_argument("--dry-run", action="store_true", help="validate and list the cases, run nothing")
    parser.add_argument("--inline", action="store_true",
                        help="run cases in this process (for debugging; no isolation, no timeout)")
    parser.add_argument("--report", action="store_true",
                        help="render the run's HTML report under reports/ when it ends, and print its path")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="skip the environment's matmul/bandwidth calibration (saves ~3 s)")


def main(args) -> int:
    suite = load(args.suite, profile=args.profile, sets=args.sets, only=args.only)
    cases = expand(suite)
    if args.dry_run:
        print(describe(suite, cases))
        return 0
    run_dir = open_run_dir(suite, args.out, args.resume)
    env_id = record_environment(run_dir, calibrate=not args.no_calibrate)
    records = run_suite(suite, cases, run_dir, env_id, inline=args.inline)
    print()
    print(table(records, suite.workload_cls.headline))
    print(f"\nresults: {run_dir}")
    if args.report:
        from mlxbench.report.cli import write_html

        print(f"report:  {write_html(run_dir)}")
    return 0 if all(r["status"] == "ok" for r in records) else 1


def open_run_dir(suite: Suite, out: str, resume: str | None) -> Path:
    """A new ``<out>/<suite>/<run id>/``, or the run being resumed (checked to be this suite's)."""
    if resume is None:
        run_dir = Path(out) / suite.name / results.new_run_id()
        run_dir.mkdir(parents=True)
    else:
        run_dir = Path(resume)
        if not run_dir.is_dir():
            raise UserError(f"{resume}: --resume: expected a run directory, got {'a file' if run_dir.exists() else 'nothing there'}")
        other = {r.get("suite") for r in results.read_records(run_dir)} - {suite.name}
        if other:
            raise UserError(f"{resume}: --resume: expected a run of suite {suite.name!r}, got one of {sorted(other)[0]!r}")
    # The command that made the run (the report's "reproduce" line); a resume keeps the first one.
    command = results.read_suite(run_dir).get("command") if resume else None
    command = command or shlex.join(["mlxbench", *sys.argv[1:]])
    results.write_suite(run_dir, {**suite.to_dict(), "command": command})
    return run_dir


def record_environment(run_dir: Path, calibrate: bool) -> str:
    """Capture the environment into ``env.json`` (kept as first written on resume); its env_id."""
    from mlxbench import env

    first = results.read_env(run_dir)
    current = env.capture(calibrate=calibrate and not first)
    import mlx.core as mx

    mx.clear_cache()  # the calibration's buffers: the runner should hold no memory the cases could use
    if not first:
        results.write_env(run_dir, current)
    elif first.get("env_id") != current["env_id"]:
        print(f"mlxbench: note: resuming on another environment ({current['env_id']}, "
              f"run began on {first.get('env_id')}); each record names its own", file=sys.stderr)
    return current["env_id"]


def run_order(cases: list[Case]) -> list[Case]:
    """Baseline cases first, so every other case can be checked against its baseline as it ends."""
    return sorted(cases, key=lambda c: not c.is_baseline)


def run_suite(suite: Suite, cases: list[Case], run_dir: Path, env_id: str, inline: bool = False) -> list[dict]:
    """Run the cases not yet ok in ``run_dir``; every case's latest record, in suite order."""
    latest = {r["case_id"]: r for r in results.latest_by_case(results.read_records(run_dir))}
    todo = [c for c in run_order(cases) if latest.get(c.case_id, {}).get("status") != "ok"]
    if len(todo) < len(cases):
        print(f"{len(cases) - len(todo)} of {len(cases)} cases already ok in {run_dir}; running {len(todo)}")
    # The baseline of each sweep point, even when --only leaves it out (an earlier run may have it).
    baseline_at = {_point_key(c.sweep): c.case_id for c in expand(replace(suite, only=())) if c.is_baseline}
    run_id = run_dir.name
    progress = Progress(len(todo))
    for case in todo:
        progress.start(case.label)
        if inline:
            from mlxbench.worker import run_case

            outcome = run_case(case)
        else:
            outcome = run_isolated(case, run_dir, progress.tick)
        record = make_record(case, outcome, run_id, env_id, inline)
        baseline = latest.get(baseline_at.get(_point_key(case.sweep), ""))
        record["equivalence"] = equivalence(record, baseline, suite.workload_cls.equivalent_params)
        results.append_record(run_dir, record)
        latest[case.case_id] = record
        progress.finish(record, suite.workload_cls.headline)
    return [latest[c.case_id] for c in cases if c.case_id in latest]


def _point_key(sweep: dict) -> str:
    return json.dumps(sweep, sort_keys=True, default=str)


def make_record(case: Case, outcome: dict, run_id: str, env_id: str, inline: bool) -> dict:
    """The record of a finished case: what it was, how it ended, what it measured."""
    return {
        "suite": case.suite, "run_id": run_id, "case_id": case.case_id, "variant": case.variant,
        "workload": case.workload, "sweep": case.sweep, "params": case.params, "seed": case.seed,
        "warmup": case.warmup, "repeat": case.repeat,
        "status": outcome["status"], "error": outcome["error"], "metrics": outcome["metrics"],
        "memory_timeline": outcome["memory_timeline"], "leak": outcome["leak"],
        "equivalence_values": outcome["equivalence_values"], "equivalence": None,
        "is_baseline": case.is_baseline, "inline": inline, "env_id": env_id,
        "started_at": outcome["started_at"], "duration_s": outcome["duration_s"],
    }


def equivalence(record: dict, baseline: dict | None, equivalent_params: frozenset[str]) -> dict | None:
    """Does a variant that differs from its baseline only in ``equivalent_params`` compute the same?

    None for the baseline itself, for variants that change what is computed, and when
    either side has no figures to compare (it failed, or its workload gives none).
    """
    if record["is_baseline"] or baseline is None or record["status"] != "ok" or baseline["status"] != "ok":
        return None
    keys = set(record["params"]) | set(baseline["params"])
    changed = {k for k in keys if record["params"].get(k) != baseline["params"].get(k)}
    values, base = record.get("equivalence_values"), baseline.get("equivalence_values")
    if not changed or not changed <= equivalent_params or not values or not base:
        return None
    rtol = max(float(values.get("rtol", 0.0)), float(base.get("rtol", 0.0)))
    mismatches = [name for name in base if name != "rtol" and not _close(values.get(name), base[name], rtol)]
    return {"baseline_case_id": baseline["case_id"], "matches": not mismatches, "mismatches": mismatches,
            "values": values, "baseline_values": base, "rtol": rtol}


def _close(value, reference, rtol: float) -> bool:
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, reference)):
        return value == reference
    return abs(value - reference) <= rtol * max(abs(value), abs(reference))


def _child_environment(case: Case) -> dict:
    """The worker sees what this process imports from: its sys.path, and the suite's directory."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p] + list(case.workload_path)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def run_isolated(case: Case, run_dir: Path, tick=lambda: None) -> dict:
    """Run ``case`` in a fresh worker process and return its outcome, built here if the worker died."""
    logs = run_dir / LOGS
    logs.mkdir(exist_ok=True)
    log_path = logs / f"{case.case_id}.log"
    with tempfile.TemporaryDirectory(prefix="mlxbench-case-") as work:
        return _run_worker(case, Path(work), log_path, tick)


def _run_worker(case: Case, work: Path, log_path: Path, tick) -> dict:
    case_path, outcome_path = work / "case.json", work / "outcome.json"
    case_path.write_text(json.dumps(case.to_dict()), encoding="utf-8")
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    oom_kills_before = oom_kill_count()
    start = time.monotonic()
    stopped: tuple[str, str] | None = None  # (status, why) when the runner stopped the case
    free_fraction = 1.0
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlxbench.worker", str(case_path), str(outcome_path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=_child_environment(case),
        )
    try:
        while True:
            try:
                proc.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
            elapsed = time.monotonic() - start
            rss = _tree_rss(proc.pid)
            memory = psutil.virtual_memory()
            free_fraction = memory.available / memory.total
            if elapsed > case.timeout_s:
                stopped = ("timeout", f"passed its timeout of {case.timeout_s:g} s; stopped after {elapsed:.1f} s")
            elif case.memory_limit_mb is not None and rss > case.memory_limit_mb * 2**20:
                stopped = ("oom", f"resident memory {rss / 2**20:.0f} MiB passed memory_limit_mb "
                                  f"{case.memory_limit_mb}; stopped")
            if stopped:
                _kill_group(proc)
                break
            tick()
    finally:
        _kill_group(proc)  # also whatever the case started and left behind
    duration = time.monotonic() - start
    if stopped is None and proc.returncode == 0 and outcome_path.exists():
        return json.loads(outcome_path.read_text(encoding="utf-8"))
    tail = _tail(log_path)
    if stopped is not None:
        status, message = stopped
    elif proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        status, message = "error", f"killed by signal {name}"
        kills = oom_kill_count()
        if kills is not None and oom_kills_before is not None and kills > oom_kills_before:
            status, message = "oom", f"killed by signal {name} by the kernel's out-of-memory killer"
        elif free_fraction < LOW_MEMORY_FRACTION:
            status, message = "oom", (f"killed by signal {name} while the machine had "
                                      f"{free_fraction:.0%} of its memory free (out of memory)")
    else:
        status, message = "error", f"worker exited with status {proc.returncode} without an outcome"
    return {**results.blank_outcome(started_at), "status": status,
            "error": {"message": message, "traceback": tail}, "duration_s": duration}


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _tree_rss(pid: int) -> int:
    """Resident memory of a process and its children, in bytes (0 once it is gone)."""
    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0


def oom_kill_count() -> int | None:
    """How many processes the Linux OOM killer has killed in this cgroup; None where unknown."""
    for path, key in (("/sys/fs/cgroup/memory.events", "oom_kill"),
                      ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill")):
        try:
            for line in Path(path).read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
        except (OSError, ValueError):
            continue
    return None


def _tail(path: Path, lines: int = LOG_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
