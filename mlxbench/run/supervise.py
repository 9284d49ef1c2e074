"""One case in one worker process: its timeout, its memory limit, how it ended, and what it leaves behind.

How a case ended is told from the evidence: the worker's own outcome (ok, error,
oom from an allocation failure), or else the process's end: past its timeout →
``timeout``; resident memory past the suite's ``memory_limit_mb`` → ``oom``; killed
by a signal → ``error``, or ``oom`` when the machine was out of memory at that moment
(the kernel's OOM-kill counter rose, or less than 5% of memory was free).

When a case ends (done, failed, timed out, or the runner stopped by SIGINT, SIGTERM or SIGHUP),
every process it started is killed (SIGKILL) and reaped: the worker's process group, and each
process of the case, looked for every POLL_S while it runs and again at the end, and remembered by
pid and start time, so one in a session or process group of its own is still found. On Linux the
runner is a child subreaper: a process whose parent exits is adopted by the runner instead of
init, so it stays findable however quickly it was orphaned (a double fork between two polls).
Not stopped: elsewhere than Linux, a process orphaned between two polls; a process the case asks
another to start (a daemon, ``systemd-run``, ``docker run``, ssh); and, when the runner itself is
killed by SIGKILL, anything but the worker (which stops on its own once its runner is gone).
The runner starts nothing else while a case runs: its new descendants are the case's.

A worker's output goes through a pipe into ``logs/<case id>.log``, which keeps at most its first
LOG_HEAD_BYTES and its last LOG_TAIL_BYTES, with one line saying how much was left out between.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path

import psutil

from mlxbench.results import units
from mlxbench.results.record import blank_outcome
from mlxbench.run.launch import worker_module
from mlxbench.run.guardrails import Guard, own_cgroup_oom_files
from mlxbench.suite.case import Case

POLL_S = 0.1  # how often a running case's clock, memory and processes are checked
LOG_LINES = 15  # lines of a crashed worker's output kept as its traceback
LOG_HEAD_BYTES = 1 << 20  # a log keeps its first MiB …
LOG_TAIL_BYTES = 3 << 20  # … and its last 3 MiB
TAIL_READ_BYTES = 16 << 10  # read from a log's end for its last LOG_LINES
LOG_DRAIN_S = 5.0  # wait this long for the worker's output to end once the case's processes are killed
LOW_MEMORY_FRACTION = 0.05  # free memory below this when a case is killed: evidence of OOM
STOP_ROUNDS = 10  # killing a case's processes looks again this often for ones started meanwhile
STOP_WAIT_S = 5.0  # how long one round waits for the killed processes to end
PR_SET_CHILD_SUBREAPER = 36  # Linux prctl option
LOGS = "logs"  # each case's worker output: logs/<case id>.log


def _child_environment(case: Case, python: str | None = None) -> dict:
    """The worker sees what this process imports from: its sys.path, and the suite's directory.

    Run by another interpreter (``python``: a history's environment of other package versions), it
    sees only this mlxbench's source and the suite's directory; the rest is that environment's own."""
    env = dict(os.environ)
    own = [p for p in sys.path if p] if python is None else [str(Path(__file__).resolve().parents[2])]
    paths = own + list(case.workload_path)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


CASE_FOLDER_PREFIX = "mlxbench-case-"
CASE_FOLDER_OWNER = "runner.pid"


def _remove_orphaned_case_folders() -> None:
    """Case folders whose runner is gone (killed with -9 mid-case) are removed by the next runner; a folder
    with no owner written is left alone (being made now, or not ours to judge)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{CASE_FOLDER_PREFIX}*"):
        try:
            owner = int((folder / CASE_FOLDER_OWNER).read_text())
        except (OSError, ValueError):
            continue
        if not psutil.pid_exists(owner):
            shutil.rmtree(folder, ignore_errors=True)


def run_isolated(case: Case, run_dir: Path, tick=lambda: None, python: str | None = None) -> dict:
    """Run ``case`` in a fresh worker process and return its outcome, built here if the worker died.

    ``python``: the interpreter of the worker (default this one's)."""
    logs = run_dir / LOGS
    logs.mkdir(exist_ok=True)
    log_path = logs / f"{case.case_id}.log"
    _become_subreaper()
    _remove_orphaned_case_folders()
    # In the system's temporary folder, not the run folder: a run folder on a full disk must still let the
    # worker write its outcome, so that the record is what fails to be written (one line, exit 2).
    with tempfile.TemporaryDirectory(prefix=CASE_FOLDER_PREFIX) as work:
        (Path(work) / CASE_FOLDER_OWNER).write_text(str(os.getpid()))
        return _run_worker(case, Path(work), log_path, tick, python)


def _run_worker(case: Case, work: Path, log_path: Path, tick, python: str | None = None) -> dict:
    case_path, outcome_path = work / "case.json", work / "outcome.json"
    case_path.write_text(json.dumps(case.to_dict()), encoding="utf-8")
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    oom_kills_before = oom_kill_count()
    before, seen = _case_processes(set()), set()  # the runner's own descendants; the case's, as found
    log = _CappedLog(log_path)
    start, proc = time.monotonic(), None
    try:
        proc = subprocess.Popen(
            # mlxbench.run.worker, or for a case of several ranks the mlx.launch of mlxbench.run.launch
            [python or sys.executable, "-m", worker_module(case), str(case_path), str(outcome_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, env=_child_environment(case, python),
        )
        log.start(proc.stdout)
        stopped, free_fraction = _watch(proc, case, start, tick, before, seen)
    finally:
        if proc is not None:
            _stop_case(proc, before, seen)  # also whatever the case started and left behind
        log.close()
    duration = time.monotonic() - start
    if stopped is None and proc.returncode == 0 and outcome_path.exists():
        return json.loads(outcome_path.read_text(encoding="utf-8"))
    status, message = stopped or _why_it_ended(proc.returncode, oom_kills_before, free_fraction)
    return {**blank_outcome(started_at), "status": status,
            "error": {"message": message, "traceback": _tail(log_path)}, "duration_s": duration}


def _watch(proc: subprocess.Popen, case: Case, start: float, tick, before: set,
           seen: set) -> tuple[tuple[str, str] | None, float]:
    """Wait for the worker; stop it past its timeout or memory limit: ((status, why) or None, free memory)."""
    free_fraction = 1.0
    guard = Guard(case, proc.pid)  # swap_limit_mb, pressure_limit
    while True:
        try:
            proc.wait(timeout=POLL_S)
            return None, free_fraction
        except subprocess.TimeoutExpired:
            pass
        elapsed = time.monotonic() - start
        rss = _remember(seen, before)
        memory = psutil.virtual_memory()
        free_fraction = memory.available / memory.total
        if elapsed > case.timeout_s:
            return ("timeout", f"passed its timeout of {case.timeout_s:g} s; stopped after {elapsed:.1f} s"), \
                free_fraction
        if case.memory_limit_mb is not None and rss > units.mb_to_bytes(case.memory_limit_mb):
            return ("oom", f"resident memory {units.size(rss)} passed memory_limit_mb "
                           f"{case.memory_limit_mb}; stopped"), free_fraction
        if (stopped := guard.check()) is not None:
            return stopped, free_fraction
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


def _become_subreaper() -> None:
    """On Linux, adopt orphaned descendants (instead of init), so a case's processes stay findable."""
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _case_processes(before: set) -> set:
    """This process's descendants not in ``before``: the worker, what it started, and the orphans adopted."""
    try:
        return set(psutil.Process().children(recursive=True)) - before
    except psutil.Error:
        return set()


def _running(proc: psutil.Process) -> bool:
    """Alive and still the process first seen (psutil compares its start time), not a zombie."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _remember(seen: set, before: set) -> int:
    """Add the case's processes running now to ``seen``, drop the ended; their resident memory, in bytes."""
    seen |= _case_processes(before)
    seen -= {proc for proc in seen if not _running(proc)}
    rss = 0
    for proc in seen:
        with suppress(psutil.Error):
            rss += proc.memory_info().rss
    return rss


def _stop_case(proc: subprocess.Popen, before: set, seen: set) -> None:
    """Kill the worker's process group and every process of the case, found now or remembered; reap them."""
    _remember(seen, before)  # while the worker's descendants still hang off it
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.kill()  # in case it left its own process group
    proc.wait()
    for _ in range(STOP_ROUNDS):  # one may start another before it is killed: look again until none is left
        left = [p for p in seen | _case_processes(before) if _running(p)]
        if not left:
            break
        for p in left:
            with suppress(psutil.Error):
                p.kill()  # psutil first checks that the pid is still that process's
        deadline = time.monotonic() + STOP_WAIT_S
        while any(map(_running, left)) and time.monotonic() < deadline:
            _reap_adopted(before)
            time.sleep(0.01)
    _reap_adopted(before)


def _reap_adopted(before: set) -> None:
    """Collect the exit status of the case's processes this runner adopted, so none stays a zombie."""
    for child in _case_processes(before):
        with suppress(ChildProcessError):  # a descendant, not a child: its own parent reaps it
            os.waitpid(child.pid, os.WNOHANG)


class _CappedLog:
    """A worker's output from a pipe into its log: the first LOG_HEAD_BYTES as they come, the last
    LOG_TAIL_BYTES when it ends, so a chatty case neither fills the disk nor the runner's memory."""

    def __init__(self, path: Path):
        self.file = open(path, "wb")
        self.head_left, self.tail, self.left_out = LOG_HEAD_BYTES, bytearray(), 0
        self.lock = threading.Lock()
        self.thread = None

    def start(self, pipe) -> None:
        # Drained by a thread, at once: a worker must never wait on its output (it would be timed).
        self.thread = threading.Thread(target=self._drain, args=(pipe,), name="mlxbench-log", daemon=True)
        self.thread.start()

    def _drain(self, pipe) -> None:
        with pipe:
            while chunk := pipe.read1(1 << 16):
                with self.lock:
                    if self.file.closed:
                        return
                    self._take(chunk)

    def _take(self, chunk: bytes) -> None:
        if self.head_left:
            head, chunk = chunk[:self.head_left], chunk[self.head_left:]
            self.head_left -= len(head)
            with suppress(OSError):  # a full disk: keep draining, or the worker would block
                self.file.write(head)
                self.file.flush()
        self.tail += chunk
        if len(self.tail) > 2 * LOG_TAIL_BYTES:  # trimmed now and then, not at every chunk
            self.left_out += len(self.tail) - LOG_TAIL_BYTES
            del self.tail[:-LOG_TAIL_BYTES]

    def close(self) -> None:
        """Write the tail, once the output has ended (or after LOG_DRAIN_S if something still holds the pipe)."""
        if self.thread is not None:
            self.thread.join(LOG_DRAIN_S)
        with self.lock, suppress(OSError):
            self.left_out += max(0, len(self.tail) - LOG_TAIL_BYTES)
            try:
                if self.left_out:
                    self.file.write(f"\n[mlxbench: {self.left_out} bytes of output left out here; a log keeps "
                                    f"its first {LOG_HEAD_BYTES} and last {LOG_TAIL_BYTES} bytes]\n".encode())
                self.file.write(self.tail[-LOG_TAIL_BYTES:])
            finally:
                self.file.close()


def oom_kill_count() -> int | None:
    """How many processes the Linux OOM killer has killed in this cgroup; None where unknown."""
    for path, key in (*own_cgroup_oom_files(), ("/sys/fs/cgroup/memory.events", "oom_kill"),
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
    """The last ``lines`` lines of a log, read from its end (a log may be large)."""
    try:
        with open(path, "rb") as f:
            offset = max(0, f.seek(0, os.SEEK_END) - TAIL_READ_BYTES)
            f.seek(offset)
            text = f.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[1 if offset and len(text) > 1 else 0:][-lines:])  # the first may be cut
