"""The measurement loop's own trackers, one job each: step time, MLX's memory counters, the OS's
memory (machine.memory_truth), other processes' CPU use, and progress. A framework's own counters
(PyTorch's) are the workload's trackers (``Workload.trackers``); mlxbench.workloads.tracker says what
a tracker is and composes them so that no figure is produced twice.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import psutil

import mlxbench  # noqa: F401  (loads the optimized BLAS before mlx.core)
import mlx.core as mx

from mlxbench import stats
from mlxbench.machine import memory_truth, profiler
from mlxbench.results.metrics import MEMORY_TRUTH_METRICS
from mlxbench.workloads.tracker import Tracker

NOT_MLX = "cannot tell: the timed work is not MLX's, and MLX's counters do not see it"


class StepTime(Tracker):
    """``perf_counter`` around each timed step: ``step_time_s``, a summary of every step's time."""

    produces = ("step_time_s",)

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._started = 0.0

    def step_started(self) -> None:
        self._started = time.perf_counter()

    def step_ended(self) -> None:
        self.samples.append(time.perf_counter() - self._started)

    def figures(self) -> dict[str, Any]:
        return {"step_time_s": stats.summarize(self.samples)} if self.samples else {}


class MlxMemory(Tracker):
    """MLX's counters over the timed steps: its peak (reset at the start), active and cache memory at
    the end, and active memory after each step (for the leak check)."""

    produces = ("peak_memory_bytes", "active_memory_bytes", "cache_memory_bytes")

    def __init__(self) -> None:
        self.active_after_step: list[int] = []
        self.read: dict[str, int] = {}

    def start(self) -> None:
        mx.reset_peak_memory()

    def step_ended(self) -> None:
        self.active_after_step.append(mx.get_active_memory())

    def stop(self) -> None:
        self.read = {"peak_memory_bytes": mx.get_peak_memory(), "active_memory_bytes": mx.get_active_memory(),
                     "cache_memory_bytes": mx.get_cache_memory()}

    def figures(self) -> dict[str, Any]:
        return dict(self.read)

    def leak(self) -> dict:
        """profiler.leak_check of active memory after each timed step."""
        return profiler.leak_check(self.active_after_step)


class OsMemory(Tracker):
    """What the OS counted over the case (machine.memory_truth.CaseMemory, started before setup) and
    the process's peak RSS; ``finish`` is given MLX's peak, or None where the work is not MLX's."""

    produces = ("peak_rss_bytes", *(m.name for m in MEMORY_TRUTH_METRICS))

    def __init__(self, sampler: profiler.MemorySampler, isolated: bool):
        self.sampler, self.isolated = sampler, isolated
        self.case = memory_truth.CaseMemory(isolated).start(mx.get_active_memory() + mx.get_cache_memory())
        self.timed_from_s: float | None = None
        self.peak_rss = 0
        self.memory: dict = {}

    def start(self) -> None:
        self.timed_from_s = self.sampler.phases[-1]["start"] if self.sampler.phases else None

    def stop(self) -> None:
        # Read before the workload's own derived figures, whose work (saving a model, …) is not the run's.
        self.peak_rss = peak_rss_bytes(self.sampler, self.isolated)

    def finish(self, mlx_peak_bytes: int | None) -> dict:
        """The case's ``memory``: the OS's layers and, where MLX did the work, their divergence from it."""
        self.memory = self.case.finish(self.sampler.timeline(max_points=None), mlx_peak_bytes or 0,
                                       self.timed_from_s)
        if mlx_peak_bytes is None:
            self.memory["divergence"] = {}
            self.memory["not_mlx"] = NOT_MLX
        return self.memory

    def figures(self) -> dict[str, Any]:
        return {"peak_rss_bytes": self.peak_rss, **(memory_truth.figures(self.memory) if self.memory else {})}


class CpuContention(Tracker):
    """Other processes' share of the CPU while the steps were timed (profiler.CpuContention)."""

    produces = ("other_processes_cpu_share",)

    def __init__(self) -> None:
        self.share: float | None = None

    def start(self) -> None:
        self._contention = profiler.CpuContention().start()

    def stop(self) -> None:
        self.share = self._contention.share()

    def figures(self) -> dict[str, Any]:
        return {} if self.share is None else {"other_processes_cpu_share": self.share}


class FixedCost(Tracker):
    """Where a case's time went. ``steps_s``: from its first warm-up step to the end of its last timed step
    (stopped right after the step clock, before any summary or derived figure). ``startup_s``: from the
    process's start to the first warm-up step (interpreter, imports, model build), in a worker only: an
    in-process case's process started long before it."""

    produces = ("startup_s", "steps_s")

    def __init__(self, sampler: profiler.MemorySampler, isolated: bool):
        self.sampler, self.isolated = sampler, isolated
        self.ended: float | None = None

    def stop(self) -> None:
        self.ended = time.perf_counter()

    def figures(self) -> dict[str, Any]:
        starts = {p["name"]: p["start"] for p in self.sampler.phases}
        if self.ended is None or "warmup" not in starts:
            return {}
        first_step = self.sampler.t0 + starts["warmup"]
        figures = {"steps_s": self.ended - first_step}
        if self.isolated:
            figures["startup_s"] = time.time() - (time.perf_counter() - first_step) - psutil.Process().create_time()
        return figures


class StepProgress(Tracker):
    """Tells ``note`` the number of each step as it starts, warm-up steps first (a rank's progress
    file, from which the launcher tells which rank hung); no figure."""

    def __init__(self, note: Callable[[int], None]):
        self.note, self.steps = note, 0

    def step_started(self) -> None:
        self.steps += 1
        self.note(self.steps)


def peak_rss_bytes(sampler: profiler.MemorySampler, isolated: bool) -> int:
    """The run's peak RSS: the sampler's, or with ``isolated`` the process's own high-water mark too."""
    # A worker's whole life is its case, so the OS's high-water mark is the case's own and
    # catches spikes between samples; in-process (--inline) it would include earlier cases.
    if isolated:
        return max(sampler.peak_rss_bytes, profiler.process_peak_rss_bytes())
    return sampler.peak_rss_bytes
