"""The measurement loop of mlxbench, written once: the worker, the tests and the
pytest-benchmark fixture all run workloads through it.

The loop: setup, ``warmup`` untimed steps, then ``repeat`` timed steps (each a ``step()`` that
evaluates all it produced) inside the trackers (mlxbench.run.trackers: step time, MLX's memory,
the OS's, CPU contention; the caller's and the workload's own), with the memory sampler marking
each phase; then a summary of each figure and the workload's derived metrics. Every figure has
one producer: a name produced twice is an error, never a replaced figure. Workloads only set up and step.

Where another timer times the steps (pytest-benchmark), ``prepare``, ``record_step``
and ``finish`` are the loop's parts to build on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import mlxbench  # noqa: F401  (loads the optimized BLAS before mlx.core)
import mlx.core as mx

from mlxbench import stats
from mlxbench.machine import profiler
from mlxbench.run import trackers as loop_trackers
from mlxbench.workloads import memory_settings
from mlxbench.workloads.tracker import Tracker, Trackers, claim

if TYPE_CHECKING:
    from mlxbench.workloads.base import Workload

SAMPLE_INTERVAL_S = 0.01


@dataclass
class Measurement:
    """What one run of the loop measured; ``metrics`` is the record's ``metrics``."""

    samples: dict[str, list[float]]  # step_time_s and each number step() returned, per timed step
    timed: dict[str, dict]  # stats.summarize of each of samples
    derived: dict[str, Any]  # wl.metrics(timed)
    figures: dict[str, Any]  # the trackers' own figures (memory, contention, a framework's counters)
    active_after_step: list[int]  # MLX's active memory; empty where the work is not MLX's
    leak: dict  # profiler.leak_check of active_after_step
    memory: dict = field(default_factory=dict)  # memory_truth.summarize: the OS's layers, divergence

    @property
    def metrics(self) -> dict[str, Any]:
        """Timed summaries, the trackers' figures, then the workload's derived ones (none shares a name)."""
        return {**self.timed, **self.figures, **self.derived}

    @property
    def peak_memory_bytes(self) -> int | None:
        """MLX's peak over the timed steps; None where the timed work is not MLX's."""
        return self.figures.get("peak_memory_bytes")

    @property
    def active_memory_bytes(self) -> int | None:
        return self.figures.get("active_memory_bytes")

    @property
    def cache_memory_bytes(self) -> int | None:
        return self.figures.get("cache_memory_bytes")

    @property
    def peak_rss_bytes(self) -> int:
        return self.figures["peak_rss_bytes"]

    @property
    def other_processes_cpu_share(self) -> float:
        return self.figures["other_processes_cpu_share"]


def measure(wl: Workload, warmup: int, repeat: int, *, sampler: profiler.MemorySampler | None = None,
            isolated: bool = False, trackers: tuple[Tracker, ...] = ()) -> Measurement:
    """Run ``wl`` through the loop: setup, ``warmup`` untimed steps, ``repeat`` timed ones.

    ``sampler`` (not yet started; a fresh one by default) is started and stopped here, its
    phases marked: setup, warmup, ``wl.timed_phase``. ``isolated``: this process runs
    nothing else (a worker), so its own peak RSS is the run's. ``trackers``: the caller's own
    (progress), composed with the loop's and the workload's, and told of the warm-up steps too.
    Teardown is the caller's.
    """
    sampler = profiler.MemorySampler(SAMPLE_INTERVAL_S) if sampler is None else sampler
    samples: dict[str, list[float]] = {}
    mx.reset_peak_memory()  # MLX's peak over the whole case too, for the OS's figures to be compared with
    os_memory = loop_trackers.OsMemory(sampler, isolated)
    with sampler:
        untimed_peak = prepare(wl, warmup, sampler, Trackers(list(trackers)))
        mlx = loop_trackers.MlxMemory() if wl.framework == "mlx" else None
        clock = loop_trackers.StepTime()  # last: the innermost, its time is the step's alone
        composed = Trackers([os_memory, loop_trackers.CpuContention(), *([mlx] if mlx else []), *trackers,
                             *wl.trackers(), loop_trackers.FixedCost(sampler, isolated), clock])
        with composed:
            for _ in range(repeat):
                with composed.step():
                    extra = wl.step()
                record_step(samples, clock.samples[-1], extra)
    mlx_peak = None if mlx is None else max(untimed_peak, mlx.read["peak_memory_bytes"])
    memory = os_memory.finish(mlx_peak)
    memory["settings"] = memory_settings.applied(wl)
    owners = dict(composed.owners)
    figures = composed.figures()
    timed, derived = finish(wl, samples, owners)
    leak = mlx.leak() if mlx else {"slope_bytes_per_step": None, "leaking": None, "reason": loop_trackers.NOT_MLX}
    return Measurement(samples=samples, timed=timed, derived=derived, figures=figures,
                       active_after_step=mlx.active_after_step if mlx else [], leak=leak, memory=memory)


def prepare(wl: Workload, warmup: int, sampler: profiler.MemorySampler | None = None,
            untimed: Trackers | None = None) -> int:
    """Set up, run ``warmup`` untimed steps and reset MLX's peak: ready for the timed steps.

    ``untimed``: trackers told of each warm-up step (a rank's progress). Returns MLX's peak over
    setup and warm-up (since its last reset), read before the reset."""
    mark = sampler.phase if sampler is not None else (lambda name: None)
    untimed = untimed or Trackers([])
    mark("setup")
    wl.setup()
    mark("warmup")
    for _ in range(warmup):
        with untimed.step():
            wl.step()
    untimed_peak = mx.get_peak_memory()
    mx.reset_peak_memory()
    mark(wl.timed_phase)
    return untimed_peak


def record_step(samples: dict[str, list[float]], seconds: float, extra: dict | None) -> None:
    """Add one timed step to ``samples``: its time as step_time_s, and each number step() returned."""
    if extra and "step_time_s" in extra:
        raise ValueError("a workload's step returned 'step_time_s', which the loop's StepTime tracker produces")
    samples.setdefault("step_time_s", []).append(seconds)
    for name, value in (extra or {}).items():
        if _number(value):
            samples.setdefault(name, []).append(float(value))


def finish(wl: Workload, samples: dict[str, list[float]],
           owners: dict[str, str] | None = None) -> tuple[dict[str, dict], dict[str, Any]]:
    """The summary of each figure in ``samples``, and the figures ``wl`` derives from them.

    ``owners``: the names the trackers produce; a workload figure of the same name is an error
    (it would replace the tracker's), as is a derived figure named like a timed one."""
    owners = dict(owners or {})
    owners.pop("step_time_s", None)  # samples carries the step time the StepTime tracker measured
    timed = {name: stats.summarize(values) for name, values in samples.items() if values}
    for name in timed:
        claim(owners, name, "step_time_s" if name == "step_time_s" else f"{wl.name}.step")
    derived = wl.metrics(timed)
    for name in derived:
        claim(owners, name, f"{wl.name}.metrics")
    return timed, derived


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
