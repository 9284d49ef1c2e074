"""How close each case came to the machine's limits: achieved rates against the calibrated ceilings.

A workload declares what it achieved as rates named ``<phase>_flop_per_s`` (FLOPs done over
the phase's time) and ``<phase>_bytes_per_s`` (bytes read over it); the run's ``env.json``
holds the two ceilings ``mlxbench env`` calibrated (compute peak, read bandwidth). The share
of the compute peak is the phase's MFU, the share of read bandwidth its bandwidth
utilisation. A run without a calibration (``--no-calibrate``, an older run that measured a
copy instead of reads) has no ceiling: its shares are null, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlxbench.results.metrics import busy_machine_share, value_of

FLOP_SUFFIX = "_flop_per_s"
BYTES_SUFFIX = "_bytes_per_s"


@dataclass(frozen=True)
class Ceilings:
    flop_per_s: float | None
    bytes_per_s: float | None
    flop_method: str
    bytes_method: str
    missing: str = ""  # why a ceiling is absent
    busy_share: float | None = None  # other processes' CPU share while calibrating, when high


@dataclass(frozen=True)
class Phase:
    """One phase of one case against the ceilings; any figure may be None."""

    phase: str
    flop_per_s: float | None
    bytes_per_s: float | None
    mfu: float | None  # share of the compute peak
    bandwidth_utilisation: float | None  # share of the read bandwidth

    @property
    def intensity(self) -> float | None:
        """Arithmetic intensity, FLOPs per byte read."""
        if self.flop_per_s is None or not self.bytes_per_s:
            return None
        return self.flop_per_s / self.bytes_per_s


def ceilings(env: dict) -> Ceilings:
    calibration = (env or {}).get("calibration") or {}
    flops = calibration.get("matmul_fp32_gflops")
    reads = calibration.get("memory_read_gbps")
    missing = []
    if flops is None:
        missing.append("no compute calibration in env.json (run without --no-calibrate)")
    if reads is None:
        missing.append("no read-bandwidth calibration in env.json"
                       + (" (this run measured a copy, which is not decode's traffic)"
                          if "memory_bandwidth_gbps" in calibration else ""))
    return Ceilings(flop_per_s=None if flops is None else flops * 1e9,
                    bytes_per_s=None if reads is None else reads * 1e9,
                    flop_method=calibration.get("matmul_method", "fp32 matmul"),
                    bytes_method=calibration.get("memory_read_method", ""),
                    missing="; ".join(missing),
                    busy_share=busy_machine_share(calibration))


def phase_names(metric_names) -> list[str]:
    """The phases a run's declarations achieve rates for, in declaration order."""
    names = []
    for name in metric_names:
        for suffix in (FLOP_SUFFIX, BYTES_SUFFIX):
            if name.endswith(suffix) and name[: -len(suffix)] not in names:
                names.append(name[: -len(suffix)])
    return names


def phases(figures: dict, limits: Ceilings, names: list[str]) -> list[Phase]:
    """Each phase a record has a figure for, with its shares of the ceilings."""
    out = []
    for phase in names:
        flops = value_of(figures.get(phase + FLOP_SUFFIX))
        reads = value_of(figures.get(phase + BYTES_SUFFIX))
        if flops is None and reads is None:
            continue
        out.append(Phase(
            phase=phase, flop_per_s=flops, bytes_per_s=reads,
            mfu=None if flops is None or not limits.flop_per_s else flops / limits.flop_per_s,
            bandwidth_utilisation=None if reads is None or not limits.bytes_per_s else reads / limits.bytes_per_s,
        ))
    return out


MFU_SUFFIX = "_mfu"
UTILISATION_SUFFIX = "_bandwidth_utilisation"


def derived_figures(figures: dict, env: dict, metric_names) -> dict[str, float | None]:
    """A case's MFU and bandwidth utilisation per phase (``<phase>_mfu``, ``<phase>_bandwidth_utilisation``,
    shares from 0 to 1; null without a ceiling): computed here once, for every format the report writes."""
    out: dict[str, float | None] = {}
    for p in phases(figures, ceilings(env), phase_names(metric_names)):
        if p.flop_per_s is not None:
            out[p.phase + MFU_SUFFIX] = p.mfu
        if p.bytes_per_s is not None:
            out[p.phase + UTILISATION_SUFFIX] = p.bandwidth_utilisation
    return out
