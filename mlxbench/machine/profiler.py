"""Memory profiler: MLX active/peak/cache memory and what the OS counts (the process's footprint and
RSS, the machine's available memory, swap and pressure: machine.os_memory) sampled on a background thread.

``mx.eval`` releases the GIL, so samples keep arriving while MLX computes.

- ``MemorySampler``: the timeline of one case (the worker) or one script (``mlxbench profile``).
- ``profile_memory()``: the same for a block of a user's own code, with MLX's exact peak.
- ``leak_check``: does active memory grow step after step? (With too few steps: it cannot tell.)
- ``peak_phase``: in which marked phase did the peak happen?
"""

from __future__ import annotations

import os
import sys
import threading
import time

import mlx.core as mx
import numpy as np
import psutil

from mlxbench.machine import memory_truth, os_memory
from mlxbench.stats import leak_slope

SAMPLER_THREAD_NAME = "mlxbench-memory-sampler"
MEMORY_SERIES = ("active", "cache", "peak", "rss")
# The OS's figures sampled with MLX's, as timeline series (bytes, pressure excepted); a platform
# that lacks one has no series for it (the timeline's "unavailable" says why).
OS_SERIES = {"process_bytes": "process", "rss_anon_bytes": "rss_anon", "rss_file_bytes": "rss_file",
             "process_swap_bytes": "process_swap", "available_bytes": "available", "swap_used_bytes": "swap_used",
             "wired_bytes": "wired", "pressure": "pressure", "pressure_full": "pressure_full"}
# Resident memory is read at every sample (cheap: ~11 µs a sample); swap, the high-water mark and the
# machine-wide figures move slowly and cost ~6× more to read: at every 10th sample (100 ms at the default
# interval), the latest carried between. Every wake-up takes a core from BLAS (2 cores here, OpenBLAS on
# both, the other thread waiting at its next barrier), so a sample's cost counts about twice.
SLOW_EVERY = 10
LEAK_MIN_STEPS = 3

# A leak must grow active memory by more than this per step to be flagged. MLX
# counts active memory to the byte, so a steady loop's after-step figure is flat
# and its Theil–Sen slope is 0; the noise to stay clear of is a loop that keeps
# small results on purpose (a scalar loss per step: 4 bytes/step). 64 KiB per
# step is a 16K-element float32 array, and over 1,000 steps already 64 MiB: big
# enough to matter, small enough that any tensor-sized leak crosses it.
LEAK_THRESHOLD_BYTES_PER_STEP = 64 * 1024


def leak_check(
    active_after_step_bytes: list[int],
    threshold_bytes_per_step: float = LEAK_THRESHOLD_BYTES_PER_STEP,
) -> dict:
    """Flag memory that grows step after step: the Theil–Sen slope of active memory
    after each step, in bytes per step, against ``threshold_bytes_per_step``.

    The median of pairwise slopes ignores a one-off jump near the ends (a buffer
    that first appears on the second step) that a least-squares fit reads as growth. With fewer than
    three points it cannot tell (two cannot tell growth from a step change): ``leaking`` is None,
    and ``reason`` says why.
    """
    values = [float(v) for v in active_after_step_bytes]
    result = {"slope_bytes_per_step": None, "threshold_bytes_per_step": float(threshold_bytes_per_step)}
    if len(values) < LEAK_MIN_STEPS:
        return {**result, "leaking": None,
                "reason": f"cannot tell: {len(values)} step{'s' * (len(values) != 1)} measured, a trend needs "
                          f"at least {LEAK_MIN_STEPS} (mark each step with step())"}
    slope = leak_slope(values)
    return {**result, "slope_bytes_per_step": slope, "leaking": bool(slope > threshold_bytes_per_step)}


def process_peak_rss_bytes() -> int:
    """The process's exact RSS high-water mark since it started (the OS's own count).

    In a worker that runs one case, this is the case's peak RSS, including spikes
    shorter than a sampling interval (Linux batches its per-thread counters, so
    it can lag a sampled RSS by a few hundred KiB).
    """
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS counts bytes, Linux KiB


class CpuContention:
    """The share of the machine's CPU that other processes used between ``start()`` and ``share()``.

    Multithreaded BLAS slows down many-fold when another process takes a core (its
    threads wait on each other at every barrier), so a timing taken on a busy machine
    must say so. Measured: the machine's busy CPU time minus this process's own.
    """

    def start(self) -> "CpuContention":
        self._machine, self._own = self._busy_s()
        self._t0 = time.perf_counter()
        return self

    @staticmethod
    def _busy_s() -> tuple[float, float]:
        machine = psutil.cpu_times()
        idle = {"idle", "iowait", "guest", "guest_nice"}  # guest time is already counted in user
        busy = sum(v for k, v in machine._asdict().items() if k not in idle)
        own = psutil.Process().cpu_times()
        return busy, own.user + own.system

    def share(self) -> float:
        """Other processes' CPU time over the machine's capacity in the interval (0..1)."""
        machine, own = self._busy_s()
        capacity = (time.perf_counter() - self._t0) * (psutil.cpu_count() or 1)
        other = (machine - self._machine) - (own - self._own)
        return round(min(1.0, max(0.0, other / capacity)), 3) if capacity > 0 else 0.0


_running: list["MemorySampler"] = []  # samplers now sampling, for the module-level phase()
_running_lock = threading.Lock()


def yield_to_compute() -> bool:
    """Run the calling thread under SCHED_IDLE: it takes a core only when no compute thread wants it.

    At normal priority a 10 ms sampler preempts a BLAS thread at each wake-up and, with as many BLAS threads
    as cores, the others wait at the barrier: 3–7% on ~10 ms matmuls. On Linux ``sched_setscheduler(0, …)``
    sets the calling thread alone; elsewhere (macOS has no SCHED_IDLE) nothing changes: False.
    """
    if not hasattr(os, "SCHED_IDLE"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        return False
    return True


class MemorySampler:
    """Samples memory every ``interval_s`` seconds while active; use as a context manager.

    ``phase(name)`` marks where a named phase (warmup, step, generate, …) begins.
    """

    def __init__(self, interval_s: float = 0.01, yield_to_compute: bool = True):
        """``yield_to_compute``: the thread runs under SCHED_IDLE (see :func:`yield_to_compute`), so while
        compute threads fill every core, samples arrive only in the gaps between them (MLX's peak and the
        OS's high-water mark stay exact); False: every ``interval_s``, preempting them."""
        if not interval_s > 0:
            raise ValueError(f"interval_s: expected a number > 0, got {interval_s!r}")
        self.interval_s = interval_s
        self.yield_to_compute = yield_to_compute
        self._process = psutil.Process()
        self._os = os_memory.Reader()
        self._reads, self._slow = 0, {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.t0 = 0.0
        self.samples: dict[str, list] = {"t": [], "active": [], "cache": [], "peak": [], "rss": []}
        self.phases: list[dict] = []  # {"name", "start"}: each phase lasts until the next starts
        self.peak_rss_bytes = 0
        self.os_last: dict = {}  # the last OS reading: its totals and high-water mark

    def _sample(self) -> None:
        t = time.perf_counter() - self.t0
        # Peak is read after active: MLX's peak only grows between resets, so a
        # sample's active can never exceed the exact peak read at the end.
        active = mx.get_active_memory()
        cache = mx.get_cache_memory()
        # MLX's reset_peak_memory sets the peak to 0, not to what is active, until
        # the next allocation; the high-water mark is at least what is held now.
        peak = max(mx.get_peak_memory(), active)
        if self._reads % SLOW_EVERY == 0:
            now = self._slow = self._os.read()
        else:
            now = {**self._slow, **self._os.read_resident()}
        self._reads += 1
        rss = now.get("rss_bytes") or self._process.memory_info().rss
        with self._lock:
            s = self.samples
            first = not s["t"]
            s["t"].append(t)
            s["active"].append(active)
            s["cache"].append(cache)
            s["peak"].append(peak)
            s["rss"].append(rss)
            for figure, series in OS_SERIES.items():
                if first and figure in now:
                    s[series] = []
                if series in s:
                    s[series].append(now.get(figure))  # None where a read failed this once
            self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
            self.os_last = now

    def _run(self) -> None:
        if self.yield_to_compute:
            yield_to_compute()
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> "MemorySampler":
        self.t0 = time.perf_counter()
        self._stop.clear()
        self._sample()
        self._thread = threading.Thread(target=self._run, name=SAMPLER_THREAD_NAME, daemon=True)
        self._thread.start()
        with _running_lock:
            _running.append(self)
        return self

    def stop(self) -> None:
        """Stop the thread and take a last sample; safe to call twice."""
        with _running_lock:
            if self in _running:
                _running.remove(self)
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._sample()
            self._os.close()

    def __enter__(self) -> "MemorySampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def phase(self, name: str) -> None:
        """Mark the start of phase ``name`` now.

        The sample taken just before the mark closes the previous phase, so memory
        reached before the mark is never credited to the new phase.
        """
        self._sample()
        self.phases.append({"name": name, "start": time.perf_counter() - self.t0})

    def timeline(self, max_points: int | None = 2000) -> dict:
        """The samples as JSON-able lists, at most ``max_points`` long (None: all), plus the phases.

        Downsampling keeps each bucket's highest active, peak, RSS and process samples and
        its lowest active one, so the chart's maxima are the sampled maxima. ``unavailable``
        names each OS figure this platform lacks and why; ``total_bytes`` is the machine's memory.
        """
        with self._lock:
            data = {k: list(v) for k, v in self.samples.items()}
        keep = None if max_points is None else downsample_indices(data, max_points)
        if keep is not None:
            data = {k: [v[i] for i in keep] for k, v in data.items()}
        data["phases"] = [dict(p) for p in self.phases]
        data["total_bytes"] = self.os_last.get("total_bytes")
        data["unavailable"] = os_memory.unavailable()
        return data


def downsample_indices(samples: dict[str, list], max_points: int) -> list[int] | None:
    """Indices of at most ``max_points`` samples that keep the memory peaks, or None to keep all.

    The series is cut into equal buckets; each keeps the samples where active, peak,
    RSS and the process footprint are highest and active is lowest (the dips, so the shape
    survives), plus the first and last sample. The global maxima are each some bucket's maximum.
    """
    n = len(samples["t"])
    if n <= max_points:
        return None
    if max_points < 7:
        raise ValueError(f"max_points: expected at least 7, got {max_points}")
    series = [np.asarray(samples[k], dtype=float) for k in ("active", "peak", "rss", "process") if k in samples]
    series = [np.nan_to_num(s, nan=-1.0) for s in series]
    active = series[0]
    buckets = max(1, (max_points - 2) // (len(series) + 1))
    keep = {0, n - 1}
    for bucket in np.array_split(np.arange(n), buckets):
        lo = bucket[0]
        keep.update(int(lo + np.argmax(s[bucket])) for s in series)
        keep.add(int(lo + np.argmin(active[bucket])))
    return sorted(keep)


def phase_at(phases: list[dict], t: float) -> str | None:
    """The phase running at time ``t``: the last one started by then (None before the first)."""
    name = None
    for p in sorted(phases, key=lambda p: p["start"]):
        if p["start"] <= t:
            name = p["name"]
    return name


def peak_phase(timeline: dict) -> str | None:
    """The phase in which the timeline's memory peak happened (None before any phase mark).

    MLX's exact peak appears in the first sample taken after it, even when the
    allocation lived shorter than the sampling interval, so the peak series pins
    the phase down where active memory alone could miss it. Backends that report
    no peak (always 0) fall back to the highest active sample.
    """
    series = timeline["peak"] if any(timeline["peak"]) else timeline["active"]
    if not series:
        return None
    first_at_max = int(np.argmax(series))
    return phase_at(timeline["phases"], timeline["t"][first_at_max])


def mark_phase(name: str) -> None:
    """Mark phase ``name`` on every running sampler: lets a script run under
    ``mlxbench profile`` (or inside ``profile_memory``) name its own phases. No-op otherwise."""
    with _running_lock:
        samplers = list(_running)
    for sampler in samplers:
        sampler.phase(name)


class MemoryProfile:
    """The memory profile of a block of code; made by ``profile_memory``.

    After the block: ``peak_bytes`` (MLX's exact peak during the block),
    ``peak_rss_bytes`` (highest sampled RSS), ``timeline`` (a DataFrame), ``phases``,
    ``peak_phase``, ``leak_check()`` over the steps marked with ``step()``, and ``memory``: what the
    OS counted (process and system layers) and whether it diverged from MLX's peak, and why.
    """

    def __init__(self, interval_s: float = 0.01):
        self.sampler = MemorySampler(interval_s)
        self.active_after_step_bytes: list[int] = []
        self._active_at_entry = 0
        self._peak_bytes: int | None = None
        self._os = memory_truth.CaseMemory(isolated=False)
        self.memory: dict | None = None

    def __enter__(self) -> "MemoryProfile":
        # MLX's reset sets the peak to 0, not to what is active now; remember
        # that, since memory held at entry is part of the block's peak too.
        self._active_at_entry = mx.get_active_memory()
        mx.reset_peak_memory()
        self._os.start(self._active_at_entry + mx.get_cache_memory())
        self.sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sampler.stop()  # runs even when the block raised; the exception propagates
        self._peak_bytes = max(mx.get_peak_memory(), self._active_at_entry)
        self.memory = self._os.finish(self.sampler.timeline(max_points=None), self._peak_bytes)

    def phase(self, name: str) -> None:
        """Mark the start of phase ``name`` now."""
        self.sampler.phase(name)

    def step(self) -> None:
        """Record active memory after one of your steps (evaluate its results first), for leak_check."""
        self.active_after_step_bytes.append(mx.get_active_memory())

    @property
    def peak_bytes(self) -> int:
        """MLX's exact peak memory during the block (so far, while it is running)."""
        if self._peak_bytes is not None:
            return self._peak_bytes
        return max(mx.get_peak_memory(), self._active_at_entry)

    @property
    def peak_rss_bytes(self) -> int:
        return self.sampler.peak_rss_bytes

    @property
    def phases(self) -> list[dict]:
        return [dict(p) for p in self.sampler.phases]

    @property
    def peak_phase(self) -> str | None:
        return peak_phase(self.sampler.timeline(max_points=None))

    @property
    def timeline(self):
        """Every sample as a pandas DataFrame: t_s, active/cache/peak/rss_bytes, the OS's figures this
        platform has (process_bytes, available_bytes, swap_used_bytes, pressure, …) and phase."""
        import pandas as pd

        data = self.sampler.timeline(max_points=None)
        os_columns = {figure: data[series] for figure, series in OS_SERIES.items() if series in data}
        frame = pd.DataFrame({"t_s": data["t"], **{f"{k}_bytes": data[k] for k in MEMORY_SERIES}, **os_columns})
        frame["phase"] = [phase_at(data["phases"], t) for t in data["t"]]
        return frame

    def leak_check(self, threshold_bytes_per_step: float = LEAK_THRESHOLD_BYTES_PER_STEP) -> dict:
        """Does active memory after each ``step()`` grow by more than the threshold per step?"""
        return leak_check(self.active_after_step_bytes, threshold_bytes_per_step)

    def to_dict(self, max_points: int = 2000) -> dict:
        """The profile as JSON-able data (timeline downsampled to ``max_points``)."""
        timeline = self.sampler.timeline(max_points)
        return {
            "peak_bytes": self.peak_bytes,
            "peak_rss_bytes": self.peak_rss_bytes,
            "peak_phase": self.peak_phase,
            "interval_s": self.sampler.interval_s,
            "phases": timeline["phases"],
            "timeline": timeline,
            "leak": self.leak_check(),
            "memory": self.memory,
        }


def profile_memory(interval_s: float = 0.01) -> MemoryProfile:
    """Profile the memory of a block: ``with profile_memory() as prof: ...``, then read ``prof``."""
    return MemoryProfile(interval_s)
