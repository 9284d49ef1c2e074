"""Where a series of history points steps up or down, and whether the samples either side back it.

Steps are located as asv's ``step_detect`` does, for short noisy series: the series is fitted by
a piecewise-constant function with a weighted L1 cost (one slow run cannot pull a level), each
point weighted by how sure it is (its samples' spread and the series' point-to-point noise), and
each extra segment pays a BIC-like penalty. A located step is then confirmed on the samples
either side with the test ``compare`` uses (Mann–Whitney, or non-overlapping ranges where the
samples are too few for it) and a minimum effect; one that cannot be confirmed says "cannot tell".
A shift that reverts at the next point is an outlier, not a step (as conbench treats it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlxbench.results.compare import judge
from mlxbench.results.metrics import STEP_TIME, Metric, percent

MIN_EFFECT = 0.05
# The figures in which the OS sees the process, and MLX's own peak: a step in the first with the
# second flat is memory MLX does not count.
OS_LAYERS = ("process_peak_bytes", "peak_rss_bytes")
MLX_PEAK = "peak_memory_bytes"


@dataclass
class Step:
    """A change of level in one series (one comparability key) between two neighbouring points."""

    key: str
    index: int  # position, in the series, of the first point at the new level
    before_label: str
    after_label: str
    before: float  # the level before (weighted median of the points' medians)
    after: float
    change: float  # after / before − 1
    verdict: str  # slower, faster, hungrier, leaner, higher, lower, cannot tell; outlier
    test: str = "none"
    p: float | None = None
    note: str = ""
    case_label: str = ""

    @property
    def outlier(self) -> bool:
        return self.verdict == "outlier"

    @property
    def confirmed(self) -> bool:
        return self.verdict not in ("cannot tell", "outlier")


def by_key(points: list) -> dict[str, list]:
    """Points split into series by comparability key, each in history order."""
    out: dict[str, list] = {}
    for point in sorted(points, key=lambda p: (p.key, p.order)):
        out.setdefault(point.key, []).append(point)
    return out


def detect(points: list, metric: Metric = STEP_TIME, min_effect: float = MIN_EFFECT) -> list[Step]:
    """The steps of every series among ``points`` (Points of results.db), confirmed or not, and outliers."""
    steps: list[Step] = []
    for series in by_key(points).values():
        steps += _series_steps(series, metric, min_effect)
    return steps


def _series_steps(series: list, metric: Metric, min_effect: float) -> list[Step]:
    levels = np.array([p.median for p in series], dtype=float)
    weights = _weights(series, levels)
    segments, outliers = _drop_outliers(fit_segments(levels, weights), levels, min_effect)
    steps = [_outlier(series, i, levels) for i in outliers]
    for (a, b), (_, c) in zip(segments, segments[1:]):
        before = _level(levels[a:b], weights[a:b])
        after = _level(levels[b:c], weights[b:c])
        change = after / before - 1 if before else math.inf
        if abs(change) < min_effect:
            continue
        verdict, row = _confirmation(_pooled(series[a:b]), _pooled(series[b:c]), min_effect, metric)
        steps.append(Step(series[b].key, b, series[b - 1].label, series[b].label, before, after, change, verdict,
                          row["test"], row["p"], row["note"], series[b].case_label))
    return sorted(steps, key=lambda s: s.index)


def _pooled(points: list) -> list[float]:
    return [float(v) for p in points for v in p.samples]


def _outlier(series: list, i: int, levels) -> Step:
    base = levels[i - 1]
    return Step(series[i].key, i, series[i - 1].label, series[i].label, base, levels[i],
                levels[i] / base - 1 if base else math.inf, "outlier",
                note=f"reverts at {series[i + 1].label}: one point off its neighbours' level", case_label=series[i].case_label)


def _weights(series: list, levels) -> np.ndarray:
    """1/σ per point: σ from the standard error of its median and the series' point-to-point noise."""
    # The point-to-point noise, from the differences of neighbours less the largest: a step makes one
    # large difference, which on a short series would otherwise pass for noise and hide itself.
    diffs = np.sort(np.abs(np.diff(levels)))[:-1]
    between = 1.4826 * float(np.median(diffs)) / math.sqrt(2) if diffs.size else 0.0
    floor = max(1e-3 * float(np.median(np.abs(levels))), 1e-12)
    sigmas = []
    for point in series:
        s = np.asarray(point.samples, dtype=float)
        within = 1.2533 * 1.4826 * float(np.median(np.abs(s - np.median(s)))) / math.sqrt(s.size) if s.size > 1 else 0.0
        sigmas.append(max(math.hypot(within, between), floor))
    return 1 / np.asarray(sigmas)


def _level(values, weights) -> float:
    """The weighted median: the level an L1 fit gives a segment."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def fit_segments(values, weights, penalty: float | None = None) -> list[tuple[int, int]]:
    """The piecewise-constant fit of least weighted L1 cost plus ``penalty`` per segment: [(start, end)].

    The penalty defaults to a BIC-like log(n) per extra segment's two parameters (level, place), in
    units of a Laplace log-likelihood, times 2 to stay quiet on short series.
    """
    n = len(values)
    if n == 0:
        return []
    penalty = 2 * math.log(max(n, 2)) * 2 if penalty is None else penalty
    best = [0.0] + [math.inf] * n
    start = [0] * (n + 1)
    for end in range(1, n + 1):
        for begin in range(end):
            v, w = values[begin:end], weights[begin:end]
            cost = best[begin] + math.sqrt(2) * float(np.sum(w * np.abs(v - _level(v, w)))) + penalty
            if cost < best[end]:
                best[end], start[end] = cost, begin
    segments, end = [], n
    while end > 0:
        segments.append((start[end], end))
        end = start[end]
    return segments[::-1]


def _drop_outliers(segments: list, levels, min_effect: float) -> tuple[list, list[int]]:
    """Segments with each one-point excursion that reverts at the next point folded into its neighbours."""
    out, outliers = [], []
    i = 0
    while i < len(segments):
        a, b = segments[i]
        if out and b - a == 1 and i + 1 < len(segments):
            prev, nxt = float(np.median(levels[slice(*out[-1])])), float(np.median(levels[slice(*segments[i + 1])]))
            if prev and abs(nxt / prev - 1) < min_effect:
                outliers.append(a)
                out[-1] = (out[-1][0], segments[i + 1][1])
                i += 2
                continue
        out.append((a, b))
        i += 1
    return out, outliers


def confirm(before_samples: list[float], after_samples: list[float], min_effect: float = MIN_EFFECT,
            metric: Metric = STEP_TIME) -> str:
    """'slower', 'faster', 'hungrier', 'leaner', 'higher' or 'lower' when the samples show a change
    of at least ``min_effect``; else 'cannot tell'."""
    return _confirmation(before_samples, after_samples, min_effect, metric)[0]


def _confirmation(before: list[float], after: list[float], min_effect: float, metric: Metric) -> tuple[str, dict]:
    """The word and compare's judgement of one step."""
    exact = len(set(before)) <= 1 and len(set(after)) <= 1 and metric.kind != "timing"
    # Values that vary are judged on their spread as a timing is, whatever the figure's kind.
    spec = Metric(metric.name, metric.label, metric.unit, metric.better or "lower",
                  "memory" if exact else "timing", True)
    figure = (lambda s: {"median": float(np.median(s)), "samples": list(s)}) if not exact else (
        lambda s: float(s[0]))
    if not before or not after:
        return "cannot tell", {"test": "none", "p": None, "note": "no samples on one side"}
    row = judge(spec, {spec.name: figure(before)}, {spec.name: figure(after)}, min_effect)
    if row["verdict"] not in ("regression", "improvement"):
        small = row["change"] is not None and abs(row["change"]) <= min_effect
        why = f"{percent(row['change'])} is within the {min_effect:.0%} minimum effect" if small else row["note"]
        return "cannot tell", {**row, "note": why or "the samples either side overlap"}
    return _word(metric, row["new"] > row["base"]), row


def _word(metric: Metric, up: bool) -> str:
    if metric.kind in ("memory", "size"):
        return "hungrier" if up else "leaner"
    if metric.kind in ("timing", "rate") and metric.better:
        return "slower" if up == (metric.better == "lower") else "faster"
    return "higher" if up else "lower"


def layer_findings(series: dict[str, list], steps: dict[str, list[Step]],
                   min_effect: float = MIN_EFFECT) -> list[str]:
    """Each confirmed step up in what the OS counts whose case's MLX peak stayed level: memory MLX
    does not see (mlx#3993's kind). Says 'cannot tell' where MLX's peak was not measured there."""
    found = []
    for layer in OS_LAYERS:
        for step in steps.get(layer, []):
            if step.verdict != "hungrier":
                continue
            mlx = {p.label: p.median for p in series.get(MLX_PEAK, []) if p.key == step.key}
            where = f"{layer} {percent(step.change)} at {step.after_label} ({step.case_label})"
            if step.before_label not in mlx or step.after_label not in mlx:
                found.append(f"{where}: cannot tell whether MLX's peak moved: not measured there")
                continue
            moved = mlx[step.after_label] / mlx[step.before_label] - 1
            if abs(moved) < min_effect:
                found.append(f"{where} while MLX's peak moved {percent(moved)}: "
                             "memory MLX does not count (allocator, interpreter, a leak outside MLX)")
    return found
