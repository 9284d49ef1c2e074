"""Statistics of timed samples: one pure module, nothing else in it."""

from __future__ import annotations

import math

import numpy as np

# A timing whose p10–p90 spread exceeds this fraction of its median is not to be trusted.
UNSTABLE_SPREAD = 0.20


def summarize(samples: list[float]) -> dict:
    """Every sample plus median, p10/p90, mean, std, CV and an ``unstable`` flag."""
    values = np.asarray(samples, dtype=float)
    if values.size == 0:
        raise ValueError("no samples to summarize")
    median = float(np.median(values))
    p10, p90 = (float(v) for v in np.percentile(values, [10, 90]))
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    cv = std / mean if mean else None  # None, not NaN: records stay strict JSON
    spread = (p90 - p10) / median if median else math.inf
    return {
        "median": median,
        "p10": p10,
        "p90": p90,
        "mean": mean,
        "std": std,
        "cv": cv,
        "min": float(values.min()),
        "max": float(values.max()),
        "n": int(values.size),
        "unstable": bool(values.size > 1 and spread > UNSTABLE_SPREAD),
        "samples": [float(v) for v in values],
    }


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided Mann–Whitney U p-value that samples ``a`` and ``b`` come from one distribution.

    Rank-based, so one slow outlier cannot make a change look significant. Exact for
    small samples without ties; with five samples a side the smallest p possible is
    2/252 ≈ 0.008. Identical samples (nothing to rank apart) give 1.0; an empty side, nan.
    """
    from scipy.stats import mannwhitneyu

    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        return math.nan
    if np.unique(np.concatenate([x, y])).size == 1:
        return 1.0
    return float(mannwhitneyu(x, y, alternative="two-sided").pvalue)


def median_interval(values: list[float], confidence: float = 0.95, resamples: int = 10_000,
                    seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the median of ``values`` (percentile method, seeded: reproducible)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no values to bootstrap")
    medians = np.median(np.random.default_rng(seed).choice(x, size=(resamples, x.size), replace=True), axis=1)
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(medians, tail)), float(np.percentile(medians, 100 - tail))


def relative_change(new: float | None, base: float | None) -> float | None:
    """(new − base) / base; None when either is missing or the base is 0."""
    if new is None or base is None or base == 0:
        return None
    return (new - base) / base


def mean_and_stdev(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value), as llama-bench reports its samples."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no values to average")
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0


SIGNIFICANCE_P = 0.01


def smallest_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value an exact Mann–Whitney test can give with these sample counts."""
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


def differ(a: list[float], b: list[float], significance: float = SIGNIFICANCE_P) -> tuple[bool | None, float | None,
                                                                                          str, str]:
    """Do samples ``a`` and ``b`` differ? (verdict, p, test, note), with asv's rule for what cannot be judged.

    With enough samples for ``p < significance`` to be reachable at all: a two-sided Mann–Whitney U
    test. With fewer (3 + 3 samples: the smallest p is 0.1) a rule that can still see a large change:
    the two sides' ranges do not overlap, and the note says so. Under two samples a side: None,
    "cannot judge".
    """
    n, m = len(a), len(b)
    if min(n, m) < 2:
        return None, None, "none", f"cannot judge with {n} + {m} samples"
    if smallest_p(n, m) < significance:
        p = mann_whitney_p(a, b)
        return bool(p < significance), p, "mann-whitney", ""
    apart = max(b) < min(a) or min(b) > max(a)
    return apart, None, "ranges", (f"cannot judge at p < {significance:g} with {n} + {m} samples "
                                   f"(smallest p {smallest_p(n, m):.2g}): judged by non-overlapping ranges")


def straddles(values: list[float], threshold: float) -> str:
    """Where repeated measurements of a ratio (or change) sit against ``threshold``: 'above', 'below', or
    'cannot tell' when they straddle it (or there are none)."""
    if values and min(values) > threshold:
        return "above"
    if values and max(values) < threshold:
        return "below"
    return "cannot tell"


def leak_slope(values: list[float]) -> float:
    """Growth per step of a series (the Theil–Sen slope: the median of pairwise slopes, so a one-off jump near
    the ends, which a least-squares fit reads as growth, does not count)."""
    # scipy.stats.theilslopes's slope, which tests/test_stats.py checks this against: importing scipy.stats
    # cost every worker 1.1 s after its last step.
    if len(values) < 2:
        raise ValueError("a slope needs at least two values")
    y = np.asarray(values, dtype=float)
    first, second = np.triu_indices(len(y), 1)
    return float(np.median((y[second] - y[first]) / (second - first)))


def order_of_round(items: list, round_: int) -> list:
    """The order of round ``round_`` (from 1) of alternating rounds, ABBA: forward in odd rounds, backward
    in even ones, so a drift in the machine's speed falls on every item alike."""
    return list(items) if round_ % 2 else list(items)[::-1]


def alternating(items: list, rounds: int) -> list[tuple[int, object]]:
    """(round, item) of ``rounds`` alternating rounds (``order_of_round``), rounds counted from 1."""
    return [(r, item) for r in range(1, rounds + 1) for item in order_of_round(items, r)]


def median_against(values: list[float], threshold: float) -> tuple[float, float, float, str]:
    """(median, low, high, where): the median of ``values``, its bootstrap 95% interval, and whether the
    interval lies 'above' or 'below' ``threshold``, or 'cannot tell' when it reaches across."""
    low, high = median_interval(values)
    return float(np.median(values)), low, high, straddles([low, high], threshold)


def best_by_median(samples: dict) -> object | None:
    """The key whose samples have the highest median (the runoff's winner); None when none has samples."""
    scored = {k: float(np.median(v)) for k, v in samples.items() if len(v)}
    return max(scored, key=scored.get, default=None)
