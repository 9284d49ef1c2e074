"""One rank of a case of several processes: ``python -m mlxbench.run.ranks CASE.json OUTCOME.json``, as
mlx.launch starts it on every host (see mlxbench.run.launch); the case comes from MLXBENCH_CASE_JSON where
CASE.json is not on this host.

The rank joins the group (``mx.distributed.init``), runs the case through the same measurement loop as
any worker, and writes its own outcome, ``rank<r>.json``, beside the case's outcome file (where that
folder exists: not on another host). A rank whose case failed exits with status 1 at once, so mlx.launch
stops the others, which may wait on it in a collective. When every rank is done, the ranks exchange their
figures through the group itself (``all_gather``, so it works across hosts too) and rank 0 writes the
case's outcome: its own, with every rank's figures and the spread between them.

While it runs, a rank notes how far it got in ``rank<r>.progress`` (connecting, step N, gathering): when
the case times out, the launcher names the rank that hung from these. SIGUSR1 prints every thread's stack.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import mlxbench  # noqa: F401  (loads the optimized BLAS before mlx.core)
import mlx.core as mx
import numpy as np

from mlxbench.machine import device
from mlxbench.results.metrics import value_of
from mlxbench.run.launch import CASE_VARIABLE, rank_file
from mlxbench.run.trackers import StepProgress
from mlxbench.run.worker import _exit_when_orphaned, error_of, jsonable, run_case
from mlxbench.suite.case import Case
from mlxbench.workloads.distributed import settings

RANK_FIGURES = ("step_time_s", "peak_memory_bytes", "peak_rss_bytes")  # each rank's own, in the record
# What each launcher tells a rank about itself, before the group exists.
RANK_VARIABLES = ("MLX_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
BACKEND_VARIABLES = (("MLX_JACCL_COORDINATOR", "jaccl"), ("NCCL_HOST_IP", "nccl"),
                     ("OMPI_COMM_WORLD_SIZE", "mpi"), ("MLX_HOSTFILE", "ring"))


class _Progress:
    """How far this rank got, in a file the launcher reads when the case times out."""

    def __init__(self, folder: Path):
        self.folder = folder if folder.is_dir() else None  # another host: the launcher cannot read it
        self.rank = next((os.environ[v] for v in RANK_VARIABLES if v in os.environ), "unknown")
        self.steps = 0

    def note(self, phase: str) -> None:
        if self.folder is None:
            return
        text = json.dumps({"phase": phase, "steps": self.steps, "at": time.time(), "host": socket.gethostname()})
        path = rank_file(self.folder, self.rank, "progress")
        try:
            path.with_suffix(".part").write_text(text, encoding="utf-8")
            os.replace(path.with_suffix(".part"), path)
        except OSError:
            pass

    def step(self, number: int) -> None:
        """Note that timed step ``number`` started (a StepProgress tracker calls it)."""
        self.steps = number
        self.note(f"step {number}")


def main(case: Case, outcome_path: Path) -> int:
    """Run this rank's part of ``case``; rank 0 writes ``outcome_path``. The exit status of the rank."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    folder = outcome_path.parent
    progress = _Progress(folder)
    progress.note("connecting")
    try:
        device.choose()
        world = mx.distributed.init(strict=True, backend=settings(case.params)["backend"])
    except Exception as exc:  # this rank never joined: say so, in its own file
        _write(rank_file(folder, progress.rank, "json"),
               {"rank": progress.rank, "status": "error", "error": error_of(exc), "host": socket.gethostname(),
                "ended_at": time.time()})
        return 1
    progress.rank = world.rank()
    progress.note("connected")
    outcome = run_case(case, isolated=True, trackers=(StepProgress(progress.step),))
    own = _own_figures(outcome, world)
    _write(rank_file(folder, world.rank(), "json"), own)
    if outcome["status"] != "ok":
        print(f"mlxbench: rank {world.rank()} failed: {(outcome['error'] or {}).get('message')}",
              file=sys.stderr, flush=True)
        return 1
    progress.note("gathering")
    ranks = gather(own, world)
    progress.note("done")
    if world.rank() == 0:
        _write(outcome_path, merge(outcome, ranks, case))
    return 0


def _own_figures(outcome: dict, world) -> dict:
    metrics = outcome.get("metrics") or {}
    return {"rank": world.rank(), "host": socket.gethostname(), "pid": os.getpid(), "status": outcome["status"],
            "error": outcome["error"], "ended_at": time.time(),
            **{name: value_of(metrics.get(name)) for name in RANK_FIGURES}}


def gather(own: dict, world) -> list[dict]:
    """Every rank's ``own``, in rank order, through the group: JSON bytes padded to the longest."""
    data = json.dumps(jsonable(own)).encode()
    lengths = mx.distributed.all_gather(mx.array([len(data)], dtype=mx.int32), group=world)
    width = int(mx.max(lengths).item())
    padded = mx.array(np.frombuffer(data.ljust(width), dtype=np.uint8))
    everyone = np.array(mx.distributed.all_gather(padded, group=world)).tobytes()
    return [json.loads(everyone[i * width:(i + 1) * width]) for i in range(world.size())]


def merge(outcome: dict, ranks: list[dict], case: Case) -> dict:
    """Rank 0's outcome with the group (backend, size, hosts), every rank's figures and their spread."""
    backend = next((name for variable, name in BACKEND_VARIABLES if variable in os.environ), "unknown")
    outcome["distributed"] = {
        "backend": backend, "requested_backend": settings(case.params)["backend"], "size": len(ranks),
        "hosts": sorted({r["host"] for r in ranks}), "launcher": "mlx.launch",
        "threads_per_rank": os.environ.get("OPENBLAS_NUM_THREADS"), "ranks": ranks,
    }
    times = [r["step_time_s"] for r in ranks if r.get("step_time_s")]
    if len(times) == len(ranks):
        outcome["metrics"]["rank_step_time_spread"] = max(times) / min(times) - 1
    return outcome


def _write(path: Path, data: dict) -> None:
    """Written whole, then renamed; nothing where the folder is not on this host."""
    try:
        partial = path.with_suffix(".part")
        partial.write_text(json.dumps(jsonable(data), allow_nan=True), encoding="utf-8")
        os.replace(partial, path)
    except OSError:
        pass


def _entry(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m mlxbench.run.ranks CASE.json OUTCOME.json", file=sys.stderr)
        return 2
    case_path, outcome_path = map(Path, argv)
    _exit_when_orphaned(os.getppid())  # mlx.launch gone: nobody would read the result
    text = case_path.read_text(encoding="utf-8") if case_path.exists() else os.environ[CASE_VARIABLE]
    return main(Case.from_dict(json.loads(text)), outcome_path)


if __name__ == "__main__":
    raise SystemExit(_entry(sys.argv[1:]))
