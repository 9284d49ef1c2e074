"""Memory profiler: MLX active/peak/cache memory and process RSS sampled on a background thread.

``mx.eval`` releases the GIL, so samples keep arriving while MLX computes.
"""

from __future__ import annotations

import threading
import time

import mlx.core as mx
import psutil
from scipy import stats as _scipy_stats

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

    The median of pairwise slopes ignores a one-off jump (a cache filling on the
    second step) that a least-squares fit would read as growth. Fewer than three
    points never flag: two points cannot tell growth from a step change.
    """
    values = [float(v) for v in active_after_step_bytes]
    if len(values) >= 3:
        slope = float(_scipy_stats.theilslopes(values)[0])
    elif len(values) == 2:
        slope = values[1] - values[0]
    else:
        slope = 0.0
    leaking = len(values) >= 3 and slope > threshold_bytes_per_step
    return {
        "slope_bytes_per_step": slope,
        "threshold_bytes_per_step": float(threshold_bytes_per_step),
        "leaking": bool(leaking),
    }


class MemorySampler:
    """Samples memory every ``interval_s`` seconds while active; use as a context manager.

    ``phase(name)`` marks where a named phase (warmup, step, generate, …) begins.
    """

    def __init__(self, interval_s: float = 0.01):
        self.interval_s = interval_s
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.t0 = 0.0
        self.samples: dict[str, list] = {"t": [], "active": [], "cache": [], "peak": [], "rss": []}
        self.phases: list[dict] = []  # {"name", "start"}: each phase lasts until the next starts
        self.peak_rss_bytes = 0

    def _sample(self) -> None:
        rss = self._process.memory_info().rss
        with self._lock:
            s = self.samples
            s["t"].append(time.perf_counter() - self.t0)
            s["active"].append(mx.get_active_memory())
            s["cache"].append(mx.get_cache_memory())
            s["peak"].append(mx.get_peak_memory())
            s["rss"].append(rss)
            self.peak_rss_bytes = max(self.peak_rss_bytes, rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> "MemorySampler":
        self.t0 = time.perf_counter()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="mlxbench-memory-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._sample()

    def __enter__(self) -> "MemorySampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def phase(self, name: str) -> None:
        """Mark the start of phase ``name`` now (and sample, so short phases show up)."""
        self.phases.append({"name": name, "start": time.perf_counter() - self.t0})
        self._sample()

    def timeline(self, max_points: int = 2000) -> dict:
        """The samples as JSON-able lists, at most ``max_points`` long, plus the phases."""
        with self._lock:
            data = {k: list(v) for k, v in self.samples.items()}
        n = len(data["t"])
        if n > max_points:
            keep = [round(i * (n - 1) / (max_points - 1)) for i in range(max_points)]
            data = {k: [v[i] for i in keep] for k, v in data.items()}
        data["phases"] = list(self.phases)
        return data
