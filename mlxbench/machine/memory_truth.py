"""Does the OS agree with MLX? One case's process and system layers, and the divergence explained.

MLX's peak counts its active buffers only. The process can hold far more: MLX's buffer cache
(freed buffers kept for reuse), memory MLX never sees (Python objects, the allocator's free lists,
libraries), or pages the OS pushed to swap. :func:`summarize` compares the process's peak with MLX's
peak over the case, flags a gap beyond max(15%, 64 MB), and names the likely cause from what the
samples saw at the moment the process peaked.

What the process held outside MLX's buffers before the measured work began (the interpreter, the
libraries the workload imported in its setup, compiled graphs) is subtracted first, so a tiny
case is not flagged for the interpreter's own memory: the baseline is the process's memory minus
MLX's active and cache memory when the timed steps began (or, without phases, before the block).
"""

from __future__ import annotations

from mlxbench.machine import os_memory

MARGIN_FRACTION = 0.15
MARGIN_BYTES = 64 * 2**20
CACHE = "cache not given back"
OUTSIDE = "memory outside MLX"
SWAP = "swap"
MB = 1e6


def reset_process_peak() -> bool:
    """Start the OS's high-water mark afresh (Linux: /proc/self/clear_refs), so the peak is the case's.

    False where it cannot (macOS keeps a lifetime peak; an old kernel; no permission).
    """
    if not os_memory.LINUX:
        return False
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # 5: reset the peak resident set size (Linux 4.0+)
        return True
    except OSError:
        return False


class CaseMemory:
    """The OS's view of one case: ``start()`` before setup, ``finish(...)`` after the timed steps."""

    def __init__(self, isolated: bool):
        self.isolated = isolated
        self.reader = os_memory.Reader()
        self.before: dict = {}
        self.own_peak = False  # the OS's high-water mark covers only this case

    def start(self, mlx_held_bytes: int) -> "CaseMemory":
        """Read the OS before the case; ``mlx_held_bytes``: MLX's active + cache memory now."""
        self.before = {**self.reader.read(), "mlx_held_bytes": mlx_held_bytes}
        self.own_peak = reset_process_peak() or (self.isolated and os_memory.MACOS)
        return self

    def finish(self, timeline: dict, mlx_peak_bytes: int, baseline_at_s: float | None = None) -> dict:
        """The case's ``memory``; ``baseline_at_s``: when the timed steps began on the timeline."""
        after = self.reader.read()
        self.reader.close()
        return summarize(timeline, self.before, after, mlx_peak_bytes, self.own_peak, baseline_at_s)


def _series(timeline: dict, key: str) -> list[float]:
    return [v for v in timeline.get(key) or [] if v is not None]


def baseline_outside_mlx(timeline: dict, before: dict, at_s: float | None) -> float | None:
    """What the process held beyond MLX's buffers at ``at_s`` on the timeline (else before the case)."""
    process, t = timeline.get("process") or [], timeline.get("t") or []
    if at_s is not None and process:
        i = max((i for i, ti in enumerate(t) if ti <= at_s and process[i] is not None), default=None)
        if i is not None:
            return process[i] - timeline["active"][i] - timeline["cache"][i]
    if before.get("process_bytes") is None:
        return None
    return before["process_bytes"] - before.get("mlx_held_bytes", 0)


def summarize(timeline: dict, before: dict, after: dict, mlx_peak_bytes: int, own_peak: bool,
              baseline_at_s: float | None = None) -> dict:
    """The ``memory`` part of a record: process and system layers, divergence, and what is missing and why.

    ``before``/``after``: :class:`os_memory.Reader` readings before setup and after the timed
    steps; ``own_peak``: ``after``'s high-water mark is the case's own (else the sampled maximum is used).
    """
    unavailable = os_memory.unavailable()
    sampled = _series(timeline, "process")
    exact = after.get("process_peak_bytes") if own_peak else None
    peak = max([v for v in (exact, max(sampled, default=None)) if v is not None], default=None)
    process = {
        "before_setup_bytes": before.get("process_bytes"),
        "baseline_bytes": baseline_outside_mlx(timeline, before, baseline_at_s),
        "peak_bytes": peak,
        "peak_source": ("the OS's high-water mark" if own_peak and "process_peak_bytes" in after
                        else "the highest sample"),
        "end_bytes": after.get("process_bytes"),
        "swap_peak_bytes": max(_series(timeline, "process_swap"), default=after.get("process_swap_bytes")),
    }
    swap = _series(timeline, "swap_used")
    system = {
        "total_bytes": after.get("total_bytes"),
        "available_min_bytes": min(_series(timeline, "available"), default=after.get("available_bytes")),
        "swap_used_before_bytes": before.get("swap_used_bytes"),
        "swap_growth_bytes": (max(swap + [after["swap_used_bytes"]]) - before["swap_used_bytes"]
                              if "swap_used_bytes" in before and "swap_used_bytes" in after else None),
        "wired_peak_bytes": max(_series(timeline, "wired"), default=after.get("wired_bytes")),
        "pressure_max": max(_series(timeline, "pressure"), default=after.get("pressure")),
    }
    return {"process": process, "system": system, "unavailable": unavailable,
            "divergence": divergence(timeline, process, system, mlx_peak_bytes)}


def divergence(timeline: dict, process: dict, system: dict, mlx_peak_bytes: int) -> dict:
    """Is the process's growth over the case beyond MLX's peak by more than the margin, and why?"""
    margin = max(MARGIN_FRACTION * mlx_peak_bytes, MARGIN_BYTES)
    base, peak = process.get("baseline_bytes"), process.get("peak_bytes")
    if base is None or peak is None:
        return {"flagged": None, "cause": None, "margin_bytes": margin,
                "detail": "cannot tell: this platform gave no process footprint (see unavailable)"}
    growth = peak - base
    gap = growth - mlx_peak_bytes
    verdict = {"flagged": gap > margin, "gap_bytes": gap, "margin_bytes": margin, "process_growth_bytes": growth,
               "mlx_peak_bytes": mlx_peak_bytes, "cause": None}
    at = _at_process_peak(timeline, base)
    verdict["at_peak"] = at
    if not verdict["flagged"]:
        verdict["detail"] = (f"the process peaked {growth / MB:.0f} MB above its baseline, MLX at "
                             f"{mlx_peak_bytes / MB:.0f} MB: within the margin of {margin / MB:.0f} MB")
        return verdict
    swap_growth = system.get("swap_growth_bytes") or 0
    cache, outside = at.get("cache_bytes") or 0, at.get("outside_bytes") or 0
    if cache >= margin and cache >= outside:
        cause, why = CACHE, (f"MLX held {cache / MB:.0f} MB of freed buffers in its cache when the process peaked "
                             "(clear_cache_threshold or mlx_cache_limit_mb gives them back)")
    elif swap_growth >= margin:
        cause, why = SWAP, f"swap grew by {swap_growth / MB:.0f} MB while the case ran"
    else:
        cause, why = OUTSIDE, (f"{outside / MB:.0f} MB held beyond MLX's active and cache memory when the "
                               "process peaked (Python objects, the allocator's free lists, libraries)")
    verdict.update(cause=cause, detail=f"the process peaked {gap / MB:.0f} MB beyond MLX's peak of "
                                       f"{mlx_peak_bytes / MB:.0f} MB (margin {margin / MB:.0f} MB): {why}")
    return verdict


def _at_process_peak(timeline: dict, baseline: float) -> dict:
    """MLX's active and cache memory in the sample where the process held most, and the rest."""
    process = timeline.get("process") or []
    if not any(v is not None for v in process):
        return {}
    i = max((i for i, v in enumerate(process) if v is not None), key=lambda i: process[i])
    active = (timeline.get("active") or [0])[i] if i < len(timeline.get("active") or []) else 0
    cache = (timeline.get("cache") or [0])[i] if i < len(timeline.get("cache") or []) else 0
    return {"t_s": timeline["t"][i], "process_bytes": process[i], "active_bytes": active, "cache_bytes": cache,
            "outside_bytes": process[i] - baseline - active - cache}


def figures(memory: dict) -> dict:
    """The record's numeric figures from a ``summarize`` result (None where the platform has none)."""
    process, system, div = memory["process"], memory["system"], memory["divergence"]
    return {
        "process_peak_bytes": process["peak_bytes"],
        "process_baseline_bytes": process["baseline_bytes"],
        "process_over_mlx_peak_bytes": div.get("gap_bytes"),
        "process_swap_peak_bytes": process["swap_peak_bytes"],
        "swap_growth_bytes": system["swap_growth_bytes"],
        "available_min_bytes": system["available_min_bytes"],
        "wired_peak_bytes": system["wired_peak_bytes"],
        "memory_pressure_max": system["pressure_max"],
    }
