"""Find the first bad point of a series from a good and a bad end, each verdict backed by the samples.

Free of I/O: ``measure(index)`` is passed in and returns the figures of one more measurement
(a record's ``metrics``) at that point, so the search is tested on synthetic series and the
command gives it real workers. A point is called bad when its figure differs from the good
end's (``differs``: Mann–Whitney on the per-step samples, p < 0.01, and a change of at least
``min_effect``) and not from the bad end's, good the other way round. Anything else (it differs
from both, or from neither, or the samples cannot say) is measured once more, pooled, and if
still unclear the search stops with "cannot tell" and the range it narrowed down to: a guess
would send the user to the wrong commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mlxbench import stats
from mlxbench.results.metrics import samples_of, value_of

MIN_EFFECT = 0.05
MAX_ROUNDS = 2  # measurements of one point before its verdict is "cannot tell"


def differs(a: list[float], b: list[float], min_effect: float = MIN_EFFECT) -> bool | None:
    """Whether two points' figures differ: True, False (within ``min_effect``), None (cannot tell).

    One value a side (an exact figure such as MLX's peak memory) is judged by the effect alone."""
    if not a or not b:
        return None
    base, new = stats.summarize(a)["median"], stats.summarize(b)["median"]
    change = stats.relative_change(new, base)
    if change is None or abs(change) < min_effect:
        return False
    if len(a) == 1 and len(b) == 1:
        return True
    verdict, *_ = stats.differ(a, b)  # an effect the samples cannot back is "cannot tell", never "same"
    return True if verdict else None


def figure_values(metrics: dict, metric: str) -> list[float]:
    """The values a point's figure is judged on: its per-step samples, or its one value."""
    figure = metrics.get(metric)
    samples = samples_of(figure)
    if samples:
        return [float(s) for s in samples]
    value = value_of(figure)
    return [] if value is None else [value]


@dataclass
class Search:
    """A bisection's state and its answer."""

    metric: str
    good: int
    bad: int
    samples: dict[int, list[list[float]]] = field(default_factory=dict)  # point → one list per measurement
    verdicts: dict[int, str] = field(default_factory=dict)  # point → "good", "bad" or "cannot tell"
    measurements: int = 0
    note: str = ""

    def pooled(self, point: int) -> list[float]:
        """Every value measured at ``point``. An exact figure measured twice stays one value."""
        runs = self.samples.get(point, [])
        if runs and all(len(r) == 1 for r in runs):
            return [stats.summarize([r[0] for r in runs])["median"]]
        return [v for r in runs for v in r]

    @property
    def found(self) -> bool:
        return not self.note and self.bad - self.good == 1


def _verdict(search: Search, point: int, min_effect: float) -> str:
    from_good = differs(search.pooled(search.good), search.pooled(point), min_effect)
    from_bad = differs(search.pooled(point), search.pooled(search.bad), min_effect)
    if from_good is True and from_bad is False:
        return "bad"
    if from_good is False and from_bad is True:
        return "good"
    return "cannot tell"


def bisect(points: int, measure: Callable[[int], dict], metric: str, min_effect: float = MIN_EFFECT,
           known: dict[int, list[dict]] | None = None) -> Search:
    """The first bad point of ``points`` (0 good, the last bad) for ``metric``.

    ``known``: figures already measured, by point (from an earlier search or metric); they are
    used before anything is measured again."""
    search = Search(metric, 0, points - 1)
    for point, figures in (known or {}).items():
        search.samples[point] = [figure_values(f, metric) for f in figures]

    def take(point: int) -> None:
        search.samples.setdefault(point, []).append(figure_values(measure(point), metric))
        search.measurements += 1

    for end in (search.good, search.bad):
        if not search.samples.get(end):
            take(end)
    if differs(search.pooled(search.good), search.pooled(search.bad), min_effect) is not True:
        take(search.bad)  # one more look before saying the ends do not differ
        if differs(search.pooled(search.good), search.pooled(search.bad), min_effect) is not True:
            search.note = f"cannot tell: the good and the bad end do not differ in {metric} by {min_effect:.0%} or more"
            return search
    while search.bad - search.good > 1:
        point = (search.good + search.bad) // 2
        verdict = _verdict(search, point, min_effect) if search.samples.get(point) else "cannot tell"
        while verdict == "cannot tell" and len(search.samples.get(point, [])) < MAX_ROUNDS:
            take(point)
            verdict = _verdict(search, point, min_effect)
        search.verdicts[point] = verdict
        if verdict == "cannot tell":
            search.note = f"cannot tell whether point {point} is good or bad in {metric}"
            return search
        if verdict == "bad":
            search.bad = point
        else:
            search.good = point
    return search
