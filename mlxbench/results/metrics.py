"""What a metric is: declared once by whatever produces it, stored with the run, read by every reader.

A workload declares its figures as :class:`Metric` s (``Workload.metrics``); the
measurement loop declares the figures every case has (:data:`LOOP_METRICS`). The
declarations are written into the run's ``suite.yaml``, so a report or a comparison
of a run needs no workload code: labels, units, which way is better, which figures
``compare`` judges and which columns a savings table shows all come from here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from mlxbench.results.units import MB  # noqa: E402,F401  (the one unit policy: 10⁶ bytes)
# Other processes' share of the CPU while a case was timed, above which its timings are suspect.
BUSY_MACHINE_SHARE = 0.15
KINDS = ("timing", "rate", "memory", "size", "count", "quality", "diagnostic")


@dataclass(frozen=True)
class Metric:
    """One figure a record can hold, and how to show and judge it."""

    name: str
    label: str  # column heading, with its display unit: "Peak Memory (MB)"
    unit: str = ""  # display unit: "s", "MB", "tok/s", "" for a plain number
    better: str | None = None  # "lower", "higher", or None where neither is better (loss)
    # timing: sampled every step (median and spread); rate: an amount over a timing's median;
    # memory/size/count/quality: one exact figure per case; diagnostic: context, never judged.
    kind: str = "count"
    judged: bool = False  # whether `mlxbench compare` calls a change in it a regression
    of: str | None = None  # a rate: the timing whose median it divides
    scale: float = 1.0  # recorded value / scale = displayed value (bytes → MB)
    column: bool = True  # shown in the savings table
    savings: str | None = None  # heading of a change-against-the-baseline column for it
    note: str = ""  # why it is or is not judged, for compare's output

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.name!r}: kind: expected one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.better not in (None, "lower", "higher"):
            raise ValueError(f"metric {self.name!r}: better: expected 'lower', 'higher' or None, got {self.better!r}")
        if self.kind == "rate" and not self.of:
            raise ValueError(f"metric {self.name!r}: a rate names the timing it divides (of=…)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Metric":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def display(self, figure) -> str:
        """A recorded figure as a table shows it, in display units."""
        value = value_of(figure)
        return number(None if value is None else value / self.scale, group=self.kind == "count")

    @property
    def savings_meaning(self) -> str:
        """What the sign of this metric's change column means, for a table's caption."""
        if self.better is None:
            return f"change in {self.label} against the baseline"
        good = "negative" if self.better == "lower" else "positive"
        return f"change in {self.label} against the baseline: {good} is better"


def timing(name: str, label: str, **kw) -> Metric:
    """A time sampled at every timed step: judged on its samples unless said otherwise."""
    return Metric(name, label, "s", "lower", "timing", kw.pop("judged", True), **kw)


def rate(name: str, label: str, of: str, unit: str = "/s", **kw) -> Metric:
    """An amount divided by the median of timing ``of``: judged through that timing, not twice."""
    kw.setdefault("note", f"judged through {of}")
    return Metric(name, label, unit, "higher", "rate", kw.pop("judged", False), of=of, **kw)


def memory(name: str, label: str, judged: bool, note: str = "", **kw) -> Metric:
    """Bytes, shown in MB."""
    return Metric(name, label, "MB", "lower", kw.pop("kind", "memory"), judged, scale=MB, note=note, **kw)


def diagnostic(name: str, label: str, unit: str = "", **kw) -> Metric:
    """Context for reading the other figures; never judged, not a table column."""
    return Metric(name, label, unit, None, "diagnostic", False, column=False, note="diagnostic", **kw)


STEP_TIME = timing("step_time_s", "Step Time (s)", savings="Time Savings")
PEAK_MEMORY = memory("peak_memory_bytes", "Peak Memory (MB)", True, savings="Memory Savings",
                     note="MLX's exact peak: the same for the same case, so the threshold alone judges it")
# What the OS counted (machine.memory_truth), beside MLX's figures; null where a platform has none.
MEMORY_TRUTH_METRICS = (
    memory("process_peak_bytes", "Process Peak (MB)", False, column=False,
           note="the OS's count (macOS footprint, Linux RSS high-water): moved by the allocator and the "
                "interpreter, one figure per case with no spread to test a change against"),
    memory("process_over_mlx_peak_bytes", "Process Peak beyond MLX Peak (MB)", False, column=False,
           note="the process's growth over the case minus MLX's peak: read with its cause (record.memory)"),
    memory("swap_growth_bytes", "Swap Growth (MB)", False, column=False,
           note="swap is the whole machine's: other processes move it too"),
    diagnostic("process_baseline_bytes", "Process before Setup (MB)", "MB", scale=MB),
    diagnostic("process_swap_peak_bytes", "Process Swap Peak (MB)", "MB", scale=MB),
    diagnostic("available_min_bytes", "Lowest Available Memory (MB)", "MB", scale=MB),
    diagnostic("wired_peak_bytes", "Wired Memory Peak (MB)", "MB", scale=MB),
    diagnostic("memory_pressure_max", "Memory Pressure (max)"),
)
# The figures the measurement loop gives every case, whatever its workload.
LOOP_METRICS = (
    STEP_TIME,
    PEAK_MEMORY,
    memory("peak_rss_bytes", "Peak RSS (MB)", False, column=False,
           note="one sampled figure per case: no spread to test a change against"),
    diagnostic("active_memory_bytes", "Active Memory (MB)", "MB", scale=MB),
    diagnostic("cache_memory_bytes", "Cache Memory (MB)", "MB", scale=MB),
    diagnostic("other_processes_cpu_share", "Other Processes' CPU Share"),
    *MEMORY_TRUTH_METRICS,
    # The fixed cost of a case (run.trackers.FixedCost): what a worker pays before its first step.
    diagnostic("startup_s", "Fixed Cost before the First Step (s)", "s"),
    diagnostic("steps_s", "Warm-up and Timed Steps (s)", "s"),
)


def combine(*groups) -> dict[str, Metric]:
    """Declarations by name, in order; a later declaration of a name replaces an earlier one in place."""
    out: dict[str, Metric] = {}
    for group in groups:
        for metric in group:
            out[metric.name] = metric
    return out


def guess(name: str, figure=None) -> Metric:
    """A declaration for a figure nobody declared (an older run, a user's extra figure), from its name."""
    label = name.replace("_", " ").capitalize()
    if name.endswith("_bytes"):
        return memory(name, label[: -len(" bytes")] + " (MB)", False, note="undeclared")
    if name.endswith("_per_s"):
        return rate(name, label[: -len(" per s")] + "/s", of="step_time_s")
    if name.endswith("_s"):
        sampled = isinstance(figure, dict) and bool(figure.get("samples"))
        return timing(name, label[: -len(" s")] + " (s)", judged=sampled,
                      note="" if sampled else "undeclared, one figure")
    return Metric(name, label, note="undeclared")


def declarations(stored: list | None, records) -> dict[str, Metric]:
    """A run's declarations: the stored ones, the loop's for older runs, a guess for any other figure."""
    readable = [m for m in map(_stored, stored if isinstance(stored, list) else []) if m is not None]
    # The stored order is the workload's; the loop's own figures follow unless it placed them.
    declared = combine(readable, [m for m in LOOP_METRICS if m.name not in {r.name for r in readable}])
    for record in records:
        for name, figure in (record.metrics or {}).items():
            if name not in declared:
                declared[name] = guess(name, figure)
    return declared


def _stored(data) -> Metric | None:
    """A stored declaration, or None where it is not one (a later reader guesses from the name)."""
    try:
        return Metric.from_dict(data) if isinstance(data, dict) else None
    except (TypeError, ValueError):
        return None


def busy_machine_share(figures: dict) -> float | None:
    """Other processes' CPU share while a case was timed, when high enough to make its timings suspect."""
    share = value_of(figures.get("other_processes_cpu_share")) or 0
    return share if share >= BUSY_MACHINE_SHARE else None


def value_of(figure) -> float | None:
    """The headline number of a figure: a timing summary's median, or the scalar itself."""
    if isinstance(figure, dict):
        figure = figure.get("median")
    if isinstance(figure, bool) or not isinstance(figure, (int, float)):
        return None
    return None if math.isnan(figure) or math.isinf(figure) else float(figure)


def samples_of(figure) -> list[float] | None:
    """The per-step samples behind a timed figure, or None."""
    samples = figure.get("samples") if isinstance(figure, dict) else None
    return samples if samples else None


def number(value: float | None, group: bool = False) -> str:
    """A display number with a sensible precision and thin-space thousands (1 000, 0.812, 3.6e-05).

    ``group``: a count, written whole with every digit (12 345 678).
    """
    if value is None:
        return "—"
    if group and float(value).is_integer():
        return f"{int(value):,}".replace(",", "\u2009")
    v = abs(value)
    if v == 0:
        text = "0"
    elif v >= 100:
        text = f"{value:,.0f}"
    elif v >= 10:
        text = f"{value:,.1f}"
    elif v >= 1:
        text = f"{value:.2f}"
    elif v >= 1e-4:
        text = f"{value:.3g}"  # 0.812, 0.0124, 0.000607: fixed notation reads at a glance
    else:
        text = f"{value:.2e}"
    return text.replace(",", "\u2009")


def percent(change: float | None) -> str:
    """A relative change as a signed percentage: -40.0%, +25.0%; — when there is none."""
    if change is None or math.isnan(change):
        return "—"
    return f"{change * 100:+.1f}%" if abs(change) >= 0.0005 else "0.0%"

