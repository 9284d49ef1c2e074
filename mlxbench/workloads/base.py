"""The small interface every workload implements; the runner owns timing and statistics.

Lifecycle, driven by the worker (mlxbench.run.worker) for one case::

    wl = WorkloadClass(params, seed)   # params: resolved and validated
    wl.setup()                         # build model and data (untimed)
    wl.step() × warmup                 # untimed
    wl.step() × repeat                 # each timed by the runner as step_time_s
    wl.metrics(timed)                  # derived figures (tokens/s, FLOPs, …)

``step()`` must ``mx.eval`` everything it produced before returning, so the
runner's timer measures the work and not the graph construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from mlxbench.results.metrics import LOOP_METRICS, Metric, combine

REGISTRY: dict[str, type["Workload"]] = {}

_MISSING = object()


@dataclass(frozen=True)
class Param:
    """One declared workload parameter: its name, type, default and help text."""

    name: str
    type: type  # int, float, bool, str, dict or list
    default: Any = _MISSING
    help: str = ""
    choices: tuple | None = None
    nullable: bool = False  # accepts null
    minimum: float | None = None
    maximum: float | None = None  # a bound that keeps a typo (10**20 steps) from meaning years of work
    # A rule on the value itself once its type is right (a model that exists): None or the problem.
    validate: Callable[[Any], str | None] | None = None

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def check(self, value: Any) -> str | None:
        """None if ``value`` is acceptable, else 'expected …, got …'."""
        if value is None:
            return None if self.nullable else f"expected {self.describe()}, got null"
        if self.choices is not None and value not in self.choices:
            return f"expected {self.describe()}, got {value!r}"
        ok_type = isinstance(value, self.type) and not (self.type is not bool and isinstance(value, bool))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            ok_type = True
        if not ok_type or (self.minimum is not None and value < self.minimum) or (
                self.maximum is not None and value > self.maximum):
            return f"expected {self.describe()}, got {value!r}"
        return self.validate(value) if self.validate else None

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(repr, self.choices)) + (" or null" if self.nullable else "")
        words = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
                 dict: "a mapping", list: "a list"}[self.type]
        if self.minimum is not None and self.maximum is not None:
            words += f" from {_plain(self.minimum)} to {_plain(self.maximum)}"
        elif self.minimum == 1 and self.type is int:
            words = "a positive integer"
        elif self.minimum is not None:
            words += f" ≥ {self.minimum}"
        return words + (" or null" if self.nullable else "")


def _plain(x: float) -> str:
    """1000000, not 1e+06: a bound as a user would type it."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


Terms = Callable[[dict], tuple[dict[str, int], dict[str, int]]]


@dataclass(frozen=True)
class MemoryModel:
    """What a workload knows of its own peak MLX memory, for ``mlxbench.estimate``.

    ``terms(params)`` gives (resident, terms): what is resident, exact (weights, optimizer
    state), and the exact sizes of what a step adds; ``constants`` say how many buffers of each
    term are alive at the peak (fitted to measured peaks, refitted by ``mlxbench estimate
    --calibrate``). A term named ``optimizer_update`` is a phase of its own: the peak is the
    larger of it and the sum of the others.
    """

    terms: Terms
    constants: dict[str, float]


@dataclass(frozen=True)
class SearchSpace:
    """What ``mlxbench fit`` may change for a workload, and the figure it maximizes."""

    objective: str
    objective_label: str
    families: tuple[dict, ...]  # the first is the plain one: the bounds are extrapolated from it
    plain_keys: dict  # the settings of "no memory trade-off"
    axis: str = "batch_size"  # the parameter doubled, then bisected at the edge of the budget, in every family
    split: str | None = None  # a parameter that splits the axis into passes (micro-batches)
    recompute: str | None = None  # a bool parameter that trades time for memory: never faster when true
    # Whether every other family trades speed for memory (GC, micro-batching), so the plain family's
    # speeds bound theirs; quantized weights may decode faster, so generation's are not bounded.
    bounded: bool = True
    # (best settings or None, weights bytes, budget bytes, fixed settings) → what rules of thumb
    # would have picked, by name; fit measures them beside its answer.
    rules_of_thumb: Callable[[dict | None, int, float, dict], dict[str, dict]] | None = None


class Workload:
    """Base class: subclass, declare ``name`` and ``params``, implement ``setup`` and ``step``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    # Parameters that must not change what a step computes (e.g. gradient checkpointing):
    # a variant that differs from the baseline only in these is checked for equivalence.
    equivalent_params: ClassVar[frozenset[str]] = frozenset()
    # The figures this workload records besides the loop's own (step time and memory: LOOP_METRICS);
    # declaring one of those here too relabels or places it (the order here is the savings table's),
    # but only the loop's tracker produces it: a workload figure of the same name is an error.
    declares: ClassVar[tuple[Metric, ...]] = ()
    # Metric names shown in the one-line summary of a finished case.
    headline: ClassVar[tuple[str, ...]] = ("step_time_s", "peak_memory_bytes")
    # Phase name the profiler gives the timed steps.
    timed_phase: ClassVar[str] = "step"
    # Whose work the timed steps are: MLX's counters (peak, active, cache) are recorded only for "mlx";
    # another framework's case leaves them blank and records its own counters through ``trackers``.
    framework: ClassVar[str] = "mlx"
    # Its peak memory from its parameters (``mlxbench estimate``, every record's estimate); None: no estimate.
    memory_model: ClassVar[MemoryModel | None] = None
    # What ``mlxbench fit`` searches; None: not searchable.
    search_space: ClassVar[SearchSpace | None] = None
    # Report sections its runs get, as data (``results.sections``): they travel in the run's suite.yaml
    # with the metric declarations, so ``mlxbench report`` renders them without this code.
    report_sections: ClassVar[tuple[dict, ...]] = ()

    def __init__(self, params: dict, seed: int = 0):
        self.p = params
        self.seed = seed

    @classmethod
    def declared_metrics(cls) -> dict[str, Metric]:
        """Every figure a case of this workload records, by name, in table order."""
        own = combine(cls.declares)
        return combine(own.values(), [m for m in LOOP_METRICS if m.name not in own])

    @classmethod
    def implementation(cls, params: dict) -> type["Workload"]:
        """The class that runs a case with ``params``: this one, or another framework's implementation of
        the same workload (``generate`` with ``framework: torch``). The worker builds what this returns."""
        return cls

    @classmethod
    def defaults(cls) -> dict:
        return {p.name: p.default for p in cls.params if not p.required}

    @classmethod
    def check(cls, params: dict) -> list[tuple[str, str]]:
        """Errors in a combination of parameters that each passed their own Param.check: (key, message) pairs."""
        return []

    def setup(self) -> None:
        """Build the model and data. Untimed."""

    def step(self) -> dict[str, float] | None:
        """Run one unit of work, fully evaluated. May return extra per-step measurements."""
        raise NotImplementedError

    def metrics(self, timed: dict[str, dict]) -> dict[str, Any]:
        """Figures derived once the timed steps are done; ``timed`` maps names to stats summaries."""
        return {}

    def trackers(self) -> list:
        """This workload's own trackers (mlxbench.workloads.tracker), called after setup: a framework's
        counters, each a figure of its own name (declared in ``declares``)."""
        return []

    def equivalence(self) -> dict[str, float] | None:
        """Figures of the first step that equivalent variants must reproduce, plus 'rtol'."""
        return None

    def teardown(self) -> None:
        """Release what setup made (temporary files, …)."""


def register(cls: type[Workload]) -> type[Workload]:
    """Class decorator: make a workload available to suites by its ``name``."""
    REGISTRY[cls.name] = cls
    return cls
