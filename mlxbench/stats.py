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
    cv = std / mean if mean else math.nan
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
