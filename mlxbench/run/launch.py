"""Cases of several processes, started with MLX's own launcher, ``mlx.launch``, and contained like any case.

For a case whose ``distributed`` parameter asks for several ranks, the supervisor starts
``python -m mlxbench.run.launch CASE.json OUTCOME.json`` in place of the worker, in the case's own
process group; this runs ``mlx.launch`` (N local processes, or the hosts of a hostfile), whose ranks
run ``python -m mlxbench.run.ranks``. Every rank is a descendant of this process, so the supervisor's
containment (process group, subreaper, ``_stop_case``) ends them all with the case.

The case's timeout bounds all ranks: a little before it, this stops the ranks (after asking each for
its stacks, printed to the case's log) and writes a ``timeout`` outcome naming the rank that hung,
from the progress each rank notes. A rank that fails ends the case as ``error`` (or ``oom``) naming
it; a rank that ends without a word ends it as ``error`` naming it too. mlx.launch itself exits 0
whatever its ranks did, so the ranks' own files are the evidence, not its exit status.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path

import psutil

from mlxbench.results.record import blank_outcome
from mlxbench.suite.case import Case
from mlxbench.workloads.distributed import launched, settings

WORKER = "mlxbench.run.worker"
LAUNCHER = "mlxbench.run.launch"
RANK_MODULE = "mlxbench.run.ranks"
CASE_VARIABLE = "MLXBENCH_CASE_JSON"  # the case, for a rank on a host without the case file
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
POLL_S = 0.1
STACKS_WAIT_S = 0.5  # after SIGUSR1, time for the ranks to print their stacks
DRAIN_S = 1.5  # then for mlx.launch to copy them into the log and end
MARGIN_FRACTION, MARGIN_MAX_S = 0.25, 4.0  # stop this much before the timeout: the supervisor is the backstop
PORTS = (20000, 60000)  # the ring backend listens on a block of ports from a random start in this range


def worker_module(case: Case) -> str:
    """The module the supervisor runs for ``case``: this launcher for several ranks, else the worker."""
    return LAUNCHER if launched(case.params) else WORKER


def rank_file(folder: Path, rank, kind: str) -> Path:
    """``rank<r>.json`` (a rank's outcome) or ``rank<r>.progress`` (how far it got) in the case's folder."""
    return folder / f"rank{rank}.{kind}"


def launcher_command() -> list[str] | None:
    """mlx.launch beside this Python, or on PATH; None if there is none."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("mlx.launch", path=path)
    return [found] if found else None


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive ports free on this host now (ring listens on one per rank)."""
    for _ in range(100):
        start = random.randrange(PORTS[0], PORTS[1] - count)
        if all(_port_free(start + i) for i in range(count)):
            return start
    raise OSError(f"found no {count} consecutive free ports in {PORTS[0]}–{PORTS[1]}")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("", port))
            return True
        except OSError:
            return False


def rank_command(case: Case, case_path: Path, outcome_path: Path) -> tuple[list[str], dict]:
    """The mlx.launch command line of ``case`` and the environment to start it in."""
    found, launcher = settings(case.params), launcher_command()
    if launcher is None:
        raise FileNotFoundError("mlx.launch not found beside this Python or on PATH (it comes with mlx)")
    command = [*launcher, "--starting-port", str(free_port_block(found["processes"]))]
    if found["backend"] != "any":
        command += ["--backend", found["backend"]]
    # mlx.launch leaves files in TMPDIR (each rank's pid file, the ring's hostfile): in the case's own
    # folder, they go with it.
    env = {**os.environ, "TMPDIR": str(outcome_path.parent)}
    if found["hostfile"] is None:
        command += ["-n", str(found["processes"])]
        # Local ranks share this machine's cores: one BLAS thread pool each, of an even share.
        share = str(max(1, (os.cpu_count() or 1) // found["processes"]))
        env.update({name: env.get(name, share) for name in THREAD_VARIABLES})
    else:
        command += ["--hostfile", found["hostfile"], "--env", f"{CASE_VARIABLE}={json.dumps(case.to_dict())}",
                    *(f"--env={name}={env[name]}" for name in ("PYTHONPATH", *THREAD_VARIABLES) if name in env)]
    return [*command, "--", sys.executable, "-m", RANK_MODULE, str(case_path), str(outcome_path)], env


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: python -m {LAUNCHER} CASE.json OUTCOME.json", file=sys.stderr)
        return 2
    start = time.monotonic()
    case_path, outcome_path = map(Path, argv)
    case = Case.from_dict(json.loads(case_path.read_text(encoding="utf-8")))
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    parent = os.getppid()
    try:
        command, env = rank_command(case, case_path, outcome_path)
    except OSError as err:
        _write(outcome_path, {**blank_outcome(started_at), "status": "error",
                              "error": {"message": str(err), "traceback": ""}, "duration_s": 0.0})
        return 0
    print("mlxbench: " + " ".join(command[:command.index("--")]), flush=True)
    deadline = start + case.timeout_s - min(MARGIN_MAX_S, MARGIN_FRACTION * case.timeout_s)
    # stdin a pipe that stays open and silent: mlx.launch reads its stdin to broadcast it, and on
    # /dev/null (always readable) its loop would spin.
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, env=env)
    ended = _wait(proc, deadline, parent)
    if not ended:
        _stop_ranks(proc)
    proc.wait()
    if ended and outcome_path.exists():
        return 0  # rank 0 wrote the outcome: every rank finished and reported
    folder = outcome_path.parent
    outcome = assemble(folder, settings(case.params)["processes"], started_at, time.monotonic() - start,
                       None if ended else case.timeout_s)
    if ended and proc.returncode and not any(folder.glob("rank*.progress")):
        # mlx.launch exits 0 whatever its ranks do: a failure of its own, before any rank started.
        outcome["error"]["message"] = (f"mlx.launch failed (exit status {proc.returncode}) before any rank "
                                       f"started: see the case's log")
    _write(outcome_path, outcome)
    return 0


def _wait(proc: subprocess.Popen, deadline: float, parent: int) -> bool:
    """Whether mlx.launch ended before ``deadline`` (False also when the runner is gone)."""
    while time.monotonic() < deadline and os.getppid() == parent:
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=POLL_S)
            return True
    return False


def _stop_ranks(launcher: subprocess.Popen) -> None:
    """Ask every rank for its stacks, kill the ranks, let mlx.launch pass on their last words, kill the rest."""
    ranks = [p for p in _descendants() if _is_rank(p)]
    for proc in ranks:
        with suppress(psutil.Error):
            proc.send_signal(signal.SIGUSR1)
    time.sleep(STACKS_WAIT_S)
    for proc in ranks:
        with suppress(psutil.Error):
            proc.kill()
    with suppress(subprocess.TimeoutExpired):
        launcher.wait(timeout=DRAIN_S)  # it copies what the ranks printed into the log, then ends
    left = _descendants()
    for proc in left:
        with suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(left, timeout=5)


def _is_rank(proc: psutil.Process) -> bool:
    try:
        return proc.cmdline()[1:3] == ["-m", RANK_MODULE]  # not mlx.launch, whose command names it too
    except psutil.Error:
        return False


def _descendants() -> list[psutil.Process]:
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def assemble(folder: Path, size: int, started_at: str, elapsed: float, timeout_s: float | None) -> dict:
    """The outcome of a case whose ranks did not all finish, from what each left: status, and who."""
    own = {r: found for r in range(size) if (found := _read(rank_file(folder, r, "json"))) is not None}
    progress = {r: found for r in range(size) if (found := _read(rank_file(folder, r, "progress"))) is not None}
    if timeout_s is not None:
        status, message, traceback = "timeout", (f"passed its timeout of {timeout_s:g} s; stopped after "
                                                 f"{elapsed:.1f} s: {who_hung(progress, size)}"), ""
    else:
        status, message, traceback = _failure(own, size, progress)
    ranks = [{"rank": r, **{k: v for k, v in (own.get(r) or {}).items() if k != "error"},
              "progress": progress.get(r)} for r in range(size)]
    return {**blank_outcome(started_at), "status": status, "duration_s": elapsed,
            "error": {"message": message, "traceback": traceback},
            "distributed": {"size": size, "launcher": "mlx.launch", "ranks": ranks}}


def _failure(own: dict, size: int, progress: dict | None = None) -> tuple[str, str, str]:
    # The first to fail is the cause; the others failed after it (a peer lost, a collective cut short).
    failed = sorted((r for r in own if own[r].get("status") != "ok"), key=lambda r: own[r].get("ended_at") or 0)
    dead = _died_without_a_word(own, size, progress or {})
    if dead:  # it died first: a rank that fails for a reason of its own writes it down, and its peers lose it
        then = own[failed[0]] if failed else {}
        after = (f"; then rank {failed[0]}: {(then.get('error') or {}).get('message')}" if failed else "")
        return "error", f"{_ranks(dead)} died without a word (killed by a signal, or a crash Python could not " \
                         f"catch; last seen {_last_seen(progress or {}, dead[0])}){after}", ""
    if failed:
        first = own[failed[0]]
        error = first.get("error") or {}
        also = f" (then {_ranks(failed[1:])} failed too)" if failed[1:] else ""
        return first.get("status") or "error", f"rank {failed[0]}: {error.get('message')}{also}", \
            error.get("traceback") or ""
    silent = [r for r in range(size) if r not in own]
    return "error", (f"{_ranks(silent)} ended without an outcome (killed, crashed, never started, or on "
                     f"another host: see the case's log)" if silent else
                     "every rank finished, yet rank 0 wrote no outcome (see the case's log)"), ""


def _died_without_a_word(own: dict, size: int, progress: dict) -> list[int]:
    """Ranks that joined the group, then ended leaving no outcome of their own, while another rank wrote one."""
    if not own:
        return []
    return [r for r in range(size) if r not in own
            and (progress.get(r) or {}).get("phase", "connecting") not in ("connecting", "done")]


def _last_seen(progress: dict, rank: int) -> str:
    phase = (progress.get(rank) or {}).get("phase", "")
    return f"in {phase}" if phase.startswith("step") else f"at {phase or 'start'}"


def who_hung(progress: dict, size: int) -> str:
    """Which rank held the others up, from how far each got (steps counted from the first warm-up step)."""
    never = [r for r in range(size) if (progress.get(r) or {}).get("phase", "connecting") == "connecting"]
    if never:
        return f"{_ranks(never)} never connected to the group"
    running = [r for r in range(size) if progress[r].get("phase") not in ("gathering", "done")]
    if not running:
        return "every rank had finished its steps and hung exchanging its figures"
    steps = {r: progress[r].get("steps", 0) for r in running}
    low = min(steps.values())
    behind = [r for r in running if steps[r] == low]
    ahead = [r for r in range(size) if r not in behind]
    if not ahead:
        return (f"{_ranks(behind)} were all still in step {low}: too slow for the timeout, or a collective "
                f"that never completed (each rank's stacks are in the case's log)")
    where = f"step {low}" if low else "setup"
    return f"{_ranks(behind)} hung in {where} while {_ranks(ahead)} went on and waited for it"


def _ranks(ranks: list[int]) -> str:
    return ("rank " if len(ranks) == 1 else "ranks ") + ", ".join(map(str, ranks))


def _write(path: Path, outcome: dict) -> None:
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(outcome, allow_nan=True), encoding="utf-8")
    os.replace(partial, path)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
