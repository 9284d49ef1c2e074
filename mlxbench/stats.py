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
