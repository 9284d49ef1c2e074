"""The measurement loop of mlxbench, written once: the worker, the tests and the
pytest-benchmark fixture all run workloads through it.

The loop: setup, ``warmup`` untimed steps, reset MLX's peak, ``repeat`` timed steps
(each ``perf_counter`` around a ``step()`` that evaluates all it produced), with the
memory sampler marking each phase; then a summary of each figure and the workload's
derived metrics. Workloads only set up and step.

Where another timer times the steps (pytest-benchmark), ``prepare``, ``record_step``
and ``finish`` are the loop's parts to build on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import mlxbench  # noqa: F401  (loads the optimized BLAS before mlx.core)
import mlx.core as mx

from mlxbench import stats
from mlxbench.machine import memory_truth, profiler
from mlxbench.workloads import _memory_settings as memory_settings

if TYPE_CHECKING:
    from mlxbench.workloads.base import Workload

SAMPLE_INTERVAL_S = 0.01


@dataclass
class Measurement:
    """What one run of the loop measured; ``metrics`` is the record's ``metrics``."""

    samples: dict[str, list[float]]  # step_time_s and each number step() returned, per timed step
    timed: dict[str, dict]  # stats.summarize of each of samples
    derived: dict[str, Any]  # wl.metrics(timed)
    peak_memory_bytes: int  # MLX's peak over the timed steps
    active_memory_bytes: int  # after the last timed step
    cache_memory_bytes: int
    peak_rss_bytes: int
    other_processes_cpu_share: float  # during the timed steps
    active_after_step: list[int]
    leak: dict  # profiler.leak_check of active_after_step
    memory: dict = field(default_factory=dict)  # memory_truth.summarize: the OS's layers, divergence


    @property
    def metrics(self) -> dict[str, Any]:
        """Timed summaries, memory figures, then the derived figures (which may replace the loop's)."""
        return {
            **self.timed,
            "peak_memory_bytes": self.peak_memory_bytes,
            "active_memory_bytes": self.active_memory_bytes,
            "cache_memory_bytes": self.cache_memory_bytes,
            "peak_rss_bytes": self.peak_rss_bytes,
            "other_processes_cpu_share": self.other_processes_cpu_share,
            **(memory_truth.figures(self.memory) if self.memory else {}),
            **self.derived,
        }


def measure(wl: Workload, warmup: int, repeat: int, *,
            sampler: profiler.MemorySampler | None = None, isolated: bool = False) -> Measurement:
    """Run ``wl`` through the loop: setup, ``warmup`` untimed steps, ``repeat`` timed ones.

    ``sampler`` (not yet started; a fresh one by default) is started and stopped here, its
    phases marked: setup, warmup, ``wl.timed_phase``. ``isolated``: this process runs
    nothing else (a worker), so its own peak RSS is the run's. Teardown is the caller's.
    """
    sampler = profiler.MemorySampler(SAMPLE_INTERVAL_S) if sampler is None else sampler
    samples: dict[str, list[float]] = {}
    active_after_step: list[int] = []
    mx.reset_peak_memory()  # MLX's peak over the whole case too, for the OS's figures to be compared with
    case_memory = memory_truth.CaseMemory(isolated).start(mx.get_active_memory() + mx.get_cache_memory())
    with sampler:
        untimed_peak = prepare(wl, warmup, sampler)
        timed_from_s = sampler.phases[-1]["start"] if sampler.phases else None
        contention = profiler.CpuContention().start()
        for _ in range(repeat):
            start = time.perf_counter()
            extra = wl.step()
            record_step(samples, time.perf_counter() - start, extra)
            active_after_step.append(mx.get_active_memory())
        peak = mx.get_peak_memory()
        active, cache = mx.get_active_memory(), mx.get_cache_memory()
        other_cpu = contention.share()
    # Read before wl.metrics, whose own work (saving a model, …) is not the run's.
    peak_rss = peak_rss_bytes(sampler, isolated)
    memory = case_memory.finish(sampler.timeline(max_points=None), max(untimed_peak, peak), timed_from_s)
    memory["settings"] = getattr(wl, "memory_settings", {})  # what memory_settings.apply set, if used
    memory_settings.restore(wl)
    timed, derived = finish(wl, samples)
    return Measurement(
        samples=samples, timed=timed, derived=derived,
        peak_memory_bytes=peak, active_memory_bytes=active, cache_memory_bytes=cache,
        peak_rss_bytes=peak_rss, other_processes_cpu_share=other_cpu,
        active_after_step=active_after_step, leak=profiler.leak_check(active_after_step), memory=memory,
    )


def prepare(wl: Workload, warmup: int, sampler: profiler.MemorySampler | None = None) -> int:
    """Set up, run ``warmup`` untimed steps and reset MLX's peak: ready for the timed steps.

    Returns MLX's peak over setup and warm-up (since its last reset), read before the reset."""
    mark = sampler.phase if sampler is not None else (lambda name: None)
    mark("setup")
    wl.setup()
    mark("warmup")
    for _ in range(warmup):
        wl.step()
    untimed_peak = mx.get_peak_memory()
    mx.reset_peak_memory()
    mark(wl.timed_phase)
    return untimed_peak


def record_step(samples: dict[str, list[float]], seconds: float, extra: dict | None) -> None:
    """Add one timed step to ``samples``: its time as step_time_s, and each number step() returned."""
    samples.setdefault("step_time_s", []).append(seconds)
    for name, value in (extra or {}).items():
        if _number(value):
            samples.setdefault(name, []).append(float(value))


def finish(wl: Workload, samples: dict[str, list[float]]) -> tuple[dict[str, dict], dict[str, Any]]:
    """The summary of each figure in ``samples``, and the figures ``wl`` derives from them."""
    timed = {name: stats.summarize(values) for name, values in samples.items() if values}
    return timed, wl.metrics(timed)


def peak_rss_bytes(sampler: profiler.MemorySampler, isolated: bool) -> int:
    """The run's peak RSS: the sampler's, or with ``isolated`` the process's own high-water mark too."""
    # A worker's whole life is its case, so the OS's high-water mark is the case's own and
    # catches spikes between samples; in-process (--inline) it would include earlier cases.
    if isolated:
        return max(sampler.peak_rss_bytes, profiler.process_peak_rss_bytes())
    return sampler.peak_rss_bytes


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
