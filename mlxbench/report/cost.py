"""Where a run's time went: the fixed cost each worker pays before its first warm-up step
(``startup_s``: interpreter, imports, model build) against the warm-up and timed steps (``steps_s``)."""

from __future__ import annotations

from mlxbench.results.record import Record


def _figures(records: list[Record], name: str) -> list[float]:
    return sorted(r.metrics[name] for r in records if isinstance(r.metrics.get(name), (int, float)))


def fixed_cost(records: list[Record]) -> str:
    """'fixed cost per case 3.7 s (median of 12: interpreter, imports, model build, …)', or '' where no case says."""
    startup = _figures(records, "startup_s")
    if not startup:
        return ""
    return f"fixed cost per case {startup[len(startup) // 2]:.1f} s (median of {len(startup)}: interpreter, " \
           f"imports, model build and any untimed preparation before the first warm-up step)"


def time_spent(records: list[Record], wall_s: float) -> str:
    """The closing line of a run: the fixed cost per case and the share of ``wall_s`` spent in warm-up and
    timed steps; '' when no case says."""
    steps = sum(_figures(records, "steps_s"))
    if not steps or wall_s <= 0:
        return ""
    minutes, seconds = divmod(round(wall_s), 60)
    fixed = fixed_cost(records)
    return f"{fixed + '; ' if fixed else ''}{steps / wall_s:.0%} of the run's {minutes}:{seconds:02d} in " \
           f"warm-up and timed steps"
