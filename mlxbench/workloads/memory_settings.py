"""MLX's own memory settings as workload parameters, so a suite can sweep them.

A workload adds :data:`PARAMS` to its ``params``, calls :func:`apply` at the start of ``setup``,
:func:`clear_cache` after each step and :func:`restore` in its ``teardown`` (a case run in-process
must not leave its limits to the next). Every ``*_mb`` is in MB of 10⁶ bytes, as everywhere in mlxbench.

- ``mlx_memory_limit_mb``: ``mx.set_memory_limit``.
- ``mlx_cache_limit_mb``: ``mx.set_cache_limit``: how much freed memory MLX keeps for reuse. Its
  default is the memory limit on Metal but 32 MB on the CPU backend, so a CPU run that should
  behave like a Mac sets it.
- ``mlx_wired_limit_mb``: ``mx.set_wired_limit``: Metal only; elsewhere recorded as not applicable.
- ``clear_cache_threshold``: mlx-lm's trainer setting: after a step, ``mx.clear_cache()`` when the
  cache holds more than this many bytes (0: after every step that left anything cached).

What was applied is left on the workload as ``memory_settings``; the loop records :func:`applied`.
"""

from __future__ import annotations

import mlx.core as mx

from mlxbench.results.units import MB
from mlxbench.workloads.base import Param

NOT_METAL = "not applicable: MLX's wired limit exists only on Metal, and this run uses another backend"
PARAMS = (
    Param("mlx_memory_limit_mb", int, None, nullable=True, minimum=1,
          help="mx.set_memory_limit in MB: MLX's limit on its own allocations (null: MLX's default)"),
    Param("mlx_cache_limit_mb", int, None, nullable=True, minimum=0,
          help="mx.set_cache_limit in MB: freed memory MLX keeps for reuse (0: none; null: MLX's default, "
               "the memory limit on Metal, 32 MiB on the CPU)"),
    Param("mlx_wired_limit_mb", int, None, nullable=True, minimum=0,
          help="mx.set_wired_limit in MB (Metal only; elsewhere recorded as not applicable; null: MLX's default)"),
    Param("clear_cache_threshold", int, None, nullable=True, minimum=0,
          help="as mlx-lm's trainer: after each step, clear MLX's cache when it holds more than this many "
               "bytes (0: every step); null: the workload's own habit"),
)
NAMES = frozenset(p.name for p in PARAMS)  # none changes what a step computes
SETTERS = {"mlx_memory_limit_mb": "set_memory_limit", "mlx_cache_limit_mb": "set_cache_limit",
           "mlx_wired_limit_mb": "set_wired_limit"}  # each returns the limit it replaced


def metal() -> bool:
    return bool(getattr(mx, "metal", None) and mx.metal.is_available())


def apply(workload) -> dict:
    """Apply the workload's memory settings; remember the previous ones for :func:`restore`."""
    p, applied, previous = workload.p, {}, {}
    for name, setter in SETTERS.items():
        value = p.get(name)
        if value is None:
            continue
        if name == "mlx_wired_limit_mb" and not metal():
            applied[name] = NOT_METAL
            continue
        previous[name] = getattr(mx, setter)(int(value * MB))
        applied[name] = value
        if name == "mlx_memory_limit_mb" and not metal():
            applied[name + "_note"] = "set; MLX's CPU allocator records the limit but does not enforce it"
    if p.get("clear_cache_threshold") is not None:
        applied["clear_cache_threshold"] = p["clear_cache_threshold"]
    workload.memory_settings, workload._memory_settings_previous = applied, previous
    return applied


def clear_cache(p: dict, otherwise: int | None = None) -> bool:
    """After a step: clear MLX's cache as ``clear_cache_threshold`` says (or ``otherwise``, the
    workload's own threshold, when it is null). Whether it cleared."""
    threshold = p.get("clear_cache_threshold")
    threshold = otherwise if threshold is None else threshold
    if threshold is not None and mx.get_cache_memory() > threshold:
        mx.clear_cache()
        return True
    return False


def applied(workload) -> dict:
    """What :func:`apply` set for ``workload`` (empty where it set nothing), for the record."""
    return dict(getattr(workload, "memory_settings", {}))


def restore(workload) -> None:
    """Put back the limits :func:`apply` replaced: the workload calls it in ``teardown``."""
    for name, value in getattr(workload, "_memory_settings_previous", {}).items():
        getattr(mx, SETTERS[name])(value)
    workload._memory_settings_previous = {}
