"""The advisor's search: the fastest configuration whose measured footprint stays under a budget.

Search, don't sweep. Configurations come in families (the settings besides batch size:
gradient checkpointing, micro-batch size, quantization bits); within a family batch size
is doubled, then bisected at the edge of the budget. The memory estimate skips every
candidate that cannot fit, and an upper bound on each candidate's speed, from what the
plain family measured, skips every one that cannot beat the best measured so far. Only
what is left is measured, each candidate by the ``measure`` function the caller gives
(a worker process per candidate, its memory limit the budget). The candidates within timing noise
of the best are then measured again head to head, in alternating rounds, and the runoff names
the answer.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Callable

from mlxbench import stats
from mlxbench.workloads.base import SearchSpace

SATURATION = 0.03  # a doubling that gains less than this has reached the plateau
MICRO_GAIN = 1.10  # at most this much faster than the plain batch of the same per-pass size
MAX_BATCH = 256
# Candidates within this of the best are measured again, head to head in alternating rounds, before one
# is named: each was measured once, minutes apart, on a machine whose speed drifts by about this much
# (small, batch 2, measured 240 and 231 tokens/s in two runs here), so one measurement cannot rank them.
RUNOFF_BAND = 0.05
RUNOFF_MAX = 2  # each contender costs a case per round


Space = SearchSpace  # what a workload declares as its search_space (mlxbench.workloads.base)


@dataclass
class Trial:
    """One candidate: its settings, the estimate, and (once measured) its outcome."""

    settings: dict
    estimate_bytes: int
    status: str = "not run"  # "ok", "oom", "error", …, or "skipped: <why>"
    speed: float | None = None
    mlx_peak_bytes: int | None = None
    footprint_bytes: int | None = None  # what counts against the budget: the process's peak RSS
    case_id: str = ""
    tags: list[str] = field(default_factory=list)
    runoff_speeds: list[float] = field(default_factory=list)  # measured again head to head (0: over budget)

    @property
    def runoff_speed(self) -> float | None:
        return statistics.median(self.runoff_speeds) if self.runoff_speeds else None

    @property
    def measured(self) -> bool:
        return not self.status.startswith(("skipped", "not run"))

    def fits(self, limit: float) -> bool:
        return self.status == "ok" and self.speed is not None and (self.footprint_bytes or 0) <= limit


Measure = Callable[[dict], Trial]  # settings → a measured Trial (status, speed, peaks)
Remeasure = Callable[[dict, int], Trial]  # settings, runoff round → a fresh measurement (never reused)
Estimate = Callable[[dict], int]  # settings → estimated MLX peak bytes


def family_batches(space: Space, family: dict, max_batch: int = MAX_BATCH) -> list[int]:
    """The batch sizes a family can take, doubling from the smallest."""
    micro = family.get(space.split) if space.split else None
    start = 2 * micro if micro else 1  # a micro-batch as large as the batch is no micro-batching
    return [b for b in (start * 2 ** i for i in range(20)) if b <= max_batch]


def valid_batch(space: Space, family: dict, batch: int) -> bool:
    micro = family.get(space.split) if space.split else None
    return batch >= 1 and (micro is None or (batch > micro and batch % micro == 0))


@dataclass
class Search:
    """State of one search: every trial by its settings, the best that fits, the budget."""

    space: Space
    families: list[dict]
    budget_bytes: float
    margin: float
    estimate: Estimate
    measure: Measure
    trials: dict[str, Trial] = field(default_factory=dict)
    overhead_bytes: float = 0.0  # footprint beyond MLX's peak (the interpreter, libraries), once measured
    searched: int = 0  # candidates the search itself measured (set once it has run)
    max_batch: int = MAX_BATCH
    fixed_batch: int | None = None  # the user fixed the batch size: only the other settings are searched
    remeasure: Remeasure | None = None  # for the runoff; None: the best single measurement wins
    runoff_rounds: int = 2
    runoff: list[Trial] = field(default_factory=list)  # the contenders measured again, if any

    @property
    def limit(self) -> float:
        return self.budget_bytes * (1 - self.margin)

    @property
    def best(self) -> Trial | None:
        if self.runoff:
            return self.runoff[stats.best_by_median({i: t.runoff_speeds for i, t in enumerate(self.runoff)})]
        fitting = [t for t in self.trials.values() if t.fits(self.limit)]
        return max(fitting, key=lambda t: t.speed, default=None)

    def trial(self, family: dict, batch: int) -> Trial:
        settings = {**family, self.space.axis: batch}
        key = self.key(settings)
        if key in self.trials:
            return self.trials[key]
        estimated = self.estimate(settings)
        if estimated + self.overhead_bytes > self.budget_bytes:
            trial = Trial(settings, estimated, status="skipped: estimated over the budget")
        else:
            trial = self.measure(settings)
            if trial.status == "ok" and trial.footprint_bytes and trial.mlx_peak_bytes:
                self.overhead_bytes = max(self.overhead_bytes, trial.footprint_bytes - trial.mlx_peak_bytes)
        self.trials[key] = trial
        return trial

    def bound(self, family: dict, batch: int) -> float:
        """An optimistic speed for ``family`` at ``batch``: from the plain family's measurements, and
        from the family's own at a smaller batch, whichever is lower."""
        if not self.space.bounded:
            return math.inf
        plain = self.measured_in(self.families[0])
        per_pass = self.per_pass(family) or batch
        gains = [(b.speed / a.speed) ** (1 / math.log2(b.settings[self.space.axis] / a.settings[self.space.axis])) - 1
                 for a, b in zip(plain, plain[1:])]  # per doubling of the batch, between measured plain batches
        gain = max(gains[-1] if gains else 1.0, 0.0) + SATURATION
        factor = MICRO_GAIN if self.per_pass(family) else 1.0

        def from_ref(ref: Trial) -> float:
            ref_per_pass = self.per_pass(ref.settings) or ref.settings[self.space.axis]
            return ref.speed * (1 + gain) ** math.log2(per_pass / ref_per_pass) * factor

        bounds = [math.inf]
        below = [t for t in plain if t.settings[self.space.axis] <= per_pass]
        if family != self.families[0] and below:
            bounds.append(from_ref(below[-1]))
        own = [t for t in self.measured_in(family) if t.settings[self.space.axis] < batch]
        if own:  # the same trade-off at a smaller batch already measured what it costs
            bounds.append(from_ref(own[-1]))
        recompute = self.space.recompute
        if recompute and family.get(recompute):  # recomputing activations is never faster than keeping them
            twin = self.trials.get(self.key({**family, recompute: False, self.space.axis: batch}))
            if twin is not None and twin.status == "ok" and twin.speed:
                bounds.append(twin.speed * (1 + SATURATION))
        return min(bounds)

    def per_pass(self, settings: dict) -> int | None:
        """The family's (or a candidate's) split of the batch into passes; None: one pass."""
        return settings.get(self.space.split) if self.space.split else None

    @staticmethod
    def key(settings: dict) -> str:
        return repr(sorted(settings.items()))

    def measured_in(self, family: dict) -> list[Trial]:
        """The family's measured trials that ran, by batch size."""
        return sorted((t for t in self.trials.values() if t.status == "ok" and t.speed
                       and all(t.settings.get(k) == v for k, v in family.items())),
                      key=lambda t: t.settings[self.space.axis])

    def beaten(self, family: dict, batch: int) -> bool:
        best = self.best
        return best is not None and self.bound(family, batch) <= best.speed

    def walk(self, family: dict) -> None:
        """Double the batch size while it fits and pays, then bisect at the edge."""
        fits_at, over_at, saturated, previous = None, None, False, None
        batches = family_batches(self.space, family, self.max_batch) if self.fixed_batch is None else (
            [self.fixed_batch] if valid_batch(self.space, family, self.fixed_batch) else [])
        for batch in batches:
            if self.beaten(family, batch):  # the bound grows with the batch: a larger one may still win
                if self.estimate({**family, self.space.axis: batch}) + self.overhead_bytes > self.budget_bytes:
                    return
                continue
            t = self.trial(family, batch)
            if not t.fits(self.limit):
                over_at = batch
                break
            if previous is not None and t.speed < previous.speed * (1 + SATURATION):
                saturated = True
                break
            fits_at, previous = batch, t
        if fits_at is not None and over_at is not None and not saturated:
            self.bisect(family, fits_at, over_at)

    def bisect(self, family: dict, low: int, high: int) -> None:
        step = self.per_pass(family) or 1
        while high - low > step:
            middle = (low + high) // 2 // step * step
            if middle <= low or self.beaten(family, middle):
                return
            t = self.trial(family, middle)
            if t.fits(self.limit):
                low = middle
            else:
                high = middle

    def run_off(self) -> None:
        """Measure the contenders within RUNOFF_BAND of the best again, in alternating rounds (ABBA);
        the best median of those rounds wins, every contender measured in the same stretch of time."""
        best = self.best
        if best is None or self.remeasure is None or self.runoff_rounds < 1:
            return
        contenders = sorted((t for t in self.trials.values()
                             if t.fits(self.limit) and t.speed >= best.speed * (1 - RUNOFF_BAND)),
                            key=lambda t: -t.speed)[:RUNOFF_MAX]
        if len(contenders) < 2:
            return
        for round_, t in stats.alternating(contenders, self.runoff_rounds):
            again = self.remeasure(t.settings, round_)
            t.runoff_speeds.append(again.speed if again.fits(self.limit) else 0.0)
        self.runoff = contenders

    def run(self) -> Trial | None:
        for family in self.families:
            self.walk(family)
        self.run_off()
        self.searched = sum(t.measured for t in self.trials.values()) + sum(len(t.runoff_speeds) for t in self.runoff)
        return self.best


def families_for(space: Space, fixed: dict) -> list[dict]:
    """The space's families without the settings the user fixed (deduplicated, plain first)."""
    out: list[dict] = []
    for family in space.families:
        free = {k: v for k, v in family.items() if k not in fixed}
        if free not in out:
            out.append(free)
    return out
