"""One case in one worker process: its timeout, its memory limit, and how it ended.

How a case ended is told from the evidence: the worker's own outcome (ok, error,
oom from an allocation failure), or else the process's end: past its timeout →
``timeout``; resident memory past the suite's ``memory_limit_mb`` → ``oom``; killed
by a signal → ``error``, or ``oom`` when the machine was out of memory at that moment
(the kernel's OOM-kill counter rose, or less than 5% of memory was free).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

from mlxbench.results.record import blank_outcome
from mlxbench.suite.schema import Case


POLL_S = 0.1  # how often a running case's clock and memory are checked


LOG_LINES = 15  # lines of a crashed worker's output kept as its traceback


LOW_MEMORY_FRACTION = 0.05  # free memory below this when a case is killed: evidence of OOM


LOGS = "logs"  # each case's worker output: logs/<case id>.log


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
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlxbench.run.worker", str(case_path), str(outcome_path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=_child_environment(case),
        )
    try:
        stopped, free_fraction = _watch(proc, case, start, tick)
    finally:
        _kill_group(proc)  # also whatever the case started and left behind
    duration = time.monotonic() - start
    if stopped is None and proc.returncode == 0 and outcome_path.exists():
        return json.loads(outcome_path.read_text(encoding="utf-8"))
    status, message = stopped or _why_it_ended(proc.returncode, oom_kills_before, free_fraction)
    return {**blank_outcome(started_at), "status": status,
            "error": {"message": message, "traceback": _tail(log_path)}, "duration_s": duration}


def _watch(proc: subprocess.Popen, case: Case, start: float, tick) -> tuple[tuple[str, str] | None, float]:
    """Wait for the worker; stop it past its timeout or memory limit: ((status, why) or None, free memory)."""
    free_fraction = 1.0
    while True:
        try:
            proc.wait(timeout=POLL_S)
            return None, free_fraction
        except subprocess.TimeoutExpired:
            pass
        elapsed = time.monotonic() - start
        rss = _tree_rss(proc.pid)
        memory = psutil.virtual_memory()
        free_fraction = memory.available / memory.total
        if elapsed > case.timeout_s:
            return ("timeout", f"passed its timeout of {case.timeout_s:g} s; stopped after {elapsed:.1f} s"), \
                free_fraction
        if case.memory_limit_mb is not None and rss > case.memory_limit_mb * 2**20:
            return ("oom", f"resident memory {rss / 2**20:.0f} MiB passed memory_limit_mb "
                           f"{case.memory_limit_mb}; stopped"), free_fraction
        tick()


def _why_it_ended(returncode: int, oom_kills_before: int | None, free_fraction: float) -> tuple[str, str]:
    """(status, message) of a worker that ended without an outcome, from the evidence left."""
    if returncode >= 0:
        return "error", f"worker exited with status {returncode} without an outcome"
    name = signal.Signals(-returncode).name
    kills = oom_kill_count()
    if kills is not None and oom_kills_before is not None and kills > oom_kills_before:
        return "oom", f"killed by signal {name} by the kernel's out-of-memory killer"
    if free_fraction < LOW_MEMORY_FRACTION:
        return "oom", (f"killed by signal {name} while the machine had "
                       f"{free_fraction:.0%} of its memory free (out of memory)")
    return "error", f"killed by signal {name}"


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
