"""The analytic memory model: a case's peak MLX memory from its parameters and its model's shapes.

A peak is what is resident (weights, optimizer state: exact, from the shapes) plus what a
step adds. What a step adds is a sum of terms, each an exact size computed from the shapes
and the case (the tensors a block keeps for its backward pass, the attention scores, the
logits, the gradients, the KV cache, …) times a constant: how many such buffers the backend
keeps alive at the peak. The constants cannot be derived (kernel buffers, what the compiled
graph fuses, allocator rounding); each workload declares its terms and their
constants (``Workload.memory_model``), fitted to measured peaks of MLX on the CPU
(``tests/test_estimate.py`` measures them), and ``mlxbench estimate --calibrate`` refits
them from a run's records for one environment. Every estimate says which constants it used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mlxbench.workloads import resolve
from mlxbench.workloads.base import MemoryModel

DEFAULT_BASIS = "default constants (fitted to MLX on the CPU; not calibrated for this environment)"


@dataclass
class Estimate:
    """A case's estimated peak MLX memory, in parts, and the constants it rests on."""

    peak_bytes: int
    resident: dict[str, int]  # exact: weights, optimizer state
    terms: dict[str, int]  # exact sizes of what a step adds, before the constants
    constants: dict[str, float]
    calibrated: bool = False
    basis: str = DEFAULT_BASIS
    notes: list[str] = field(default_factory=list)

    @property
    def parts(self) -> dict[str, int]:
        """Bytes of each part at the peak: the resident ones and each term of the peak's phase times its constant."""
        scaled = {k: round(v * self.constants.get(k, 0.0)) for k, v in self.terms.items()}
        update = scaled.pop(UPDATE, 0)
        if update > sum(scaled.values()):  # the peak is in the update, not in forward/backward
            scaled = {UPDATE: update}
        return {**self.resident, **{k: v for k, v in scaled.items() if v}}

    def to_dict(self) -> dict:
        return {**asdict(self), "parts": self.parts}

    def summary(self) -> str:
        """'~1.23 GB (weights 0.12 GB, activations …) · calibrated' in one line."""
        parts = sorted(self.parts.items(), key=lambda kv: -kv[1])[:4]
        listed = ", ".join(f"{k.replace('_', ' ')} {gb(v)}" for k, v in parts)
        return f"~{gb(self.peak_bytes)} ({listed}) · {'calibrated' if self.calibrated else 'not calibrated'}"


def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


# A phase of its own: the optimizer update, once the activations are gone, holds the gradients and
# the update's temporaries. The peak is the larger of it and the forward/backward's terms.
UPDATE = "optimizer_update"


def combine(resident: dict[str, int], terms: dict[str, int], constants: dict[str, float]) -> int:
    step = sum(v * constants.get(k, 0.0) for k, v in terms.items() if k != UPDATE)
    return round(sum(resident.values()) + max(step, terms.get(UPDATE, 0) * constants.get(UPDATE, 0.0)))


def memory_model(workload: str) -> MemoryModel | None:
    """The memory model the workload declares (a shipped name or ``module:Class``); None: it has none."""
    try:
        return resolve(workload).memory_model
    except LookupError:
        return None


def supports(workload: str) -> bool:
    """Whether the workload declares a memory model."""
    return memory_model(workload) is not None


def terms_of(workload: str, params: dict) -> tuple[dict[str, int], dict[str, int]]:
    """(resident, terms) of a case, exact sizes before the constants."""
    return memory_model(workload).terms(params)


def default_constants(workload: str) -> dict[str, float]:
    """The constants the workload's memory model was fitted with."""
    return dict(memory_model(workload).constants)


def estimate(workload: str, params: dict, constants: dict | None = None, basis: str | None = None) -> Estimate:
    """The estimated peak of a ``workload`` case with ``params``; ``constants`` from a calibration, if any."""
    resident, terms = terms_of(workload, params)
    used = {**default_constants(workload), **(constants or {})}
    return Estimate(peak_bytes=combine(resident, terms, used), resident=resident, terms=terms,
                    constants=used, calibrated=constants is not None, basis=basis or DEFAULT_BASIS)


def weights_bytes(workload: str, params: dict) -> int:
    """The weights alone, as the case holds them."""
    return terms_of(workload, params)[0].get("weights", 0)


__all__ = ["Estimate", "estimate", "supports", "weights_bytes", "default_constants", "terms_of"]
