"""A case: one variant of a suite at one sweep point, everything a worker needs to run it, and the
one way a case is made from a suite (:func:`case_of`), which ``run``'s expansion and ``fit``'s
candidates both use, so a fit candidate has the guardrails, workload path and limits of the run case
with the same settings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Case:
    """One variant at one sweep point: everything a worker needs to run it."""

    suite: str
    workload: str
    variant: str
    sweep: dict
    params: dict
    seed: int
    warmup: int
    repeat: int
    timeout_s: float
    is_baseline: bool
    case_id: str
    memory_limit_mb: int | None = None  # MB of 10⁶ bytes (mlxbench.results.units)
    workload_path: tuple[str, ...] = ()  # where 'module:Class' workloads are looked up
    swap_limit_mb: int | None = None  # guardrails (run.guardrails)
    pressure_limit: str | None = None

    @property
    def label(self) -> str:
        """'GC only · seq_length=512'."""
        point = ", ".join(f"{k}={v}" for k, v in self.sweep.items())
        return f"{self.variant} · {point}" if point else self.variant

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Case":
        return cls(**{**data, "workload_path": tuple(data.get("workload_path", ()))})


def case_id(suite: str, workload: str, params: dict, seed: int) -> str:
    """The stable id of a case: what it computes, hashed; the same in every run."""
    canonical = json.dumps({"suite": suite, "workload": workload, "params": params, "seed": seed},
                           sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def case_of(suite: Any, variant: str, settings: dict, sweep: dict, id_suffix: str = "") -> Case:
    """The case of ``suite``'s (a suite.schema.Suite, which imports this module) ``variant`` with ``settings`` over its defaults, shown at ``sweep``:
    the suite's loop settings, memory limit, guardrails and workload path. ``id_suffix`` makes a
    repeated measurement of the same settings a case of its own (fit's runoff rounds)."""
    params = {**suite.workload_cls.defaults(), **suite.defaults, **settings}
    return Case(
        suite=suite.name, workload=suite.workload, variant=variant, sweep=dict(sweep), params=params,
        seed=suite.seed, warmup=suite.warmup, repeat=suite.repeat, timeout_s=float(suite.timeout),
        is_baseline=variant == suite.baseline, case_id=case_id(suite.name + id_suffix, suite.workload, params, suite.seed),
        memory_limit_mb=suite.memory_limit_mb, workload_path=search_path(suite.path),
        swap_limit_mb=suite.swap_limit_mb, pressure_limit=suite.pressure_limit,
    )


def search_path(suite_path: str) -> tuple[str, ...]:
    """Where a suite's 'module:Class' workloads are looked up: its file's folder."""
    return (str(Path(suite_path).resolve().parent),) if suite_path else ()


def settings_label(settings: dict) -> str:
    """Settings in one line, as a fit candidate is named: 'batch_size=4, grad_checkpoint=true' (null for None)."""
    return ", ".join(f"{k}={'null' if v is None else str(v).lower()}" for k, v in settings.items())
