"""Step detection on synthetic history series: a real step is found and confirmed, noise and a
one-point excursion are not steps, and a footprint that grows under a flat MLX peak is a finding."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mlxbench.history.steps import confirm, detect, fit_segments, layer_findings
from mlxbench.results.db import Point
from mlxbench.results.metrics import LOOP_METRICS, rate

METRICS = {m.name: m for m in LOOP_METRICS}


def series(levels: list[float], noise: float = 0.02, samples: int = 5, seed: int = 0, key: str = "k") -> list[Point]:
    """One point per level, each with ``samples`` per-step samples scattered ±``noise`` around it."""
    rng = random.Random(seed)
    points = []
    for i, level in enumerate(levels):
        values = [level * (1 + noise * (2 * rng.random() - 1)) for _ in range(samples)]
        values.sort()
        points.append(Point(label=f"v{i}", order=f"{i:04d}", machine="m", key=key, samples=values,
                            median=values[len(values) // 2], run_dir="", case_label="baseline"))
    return points


def exact(levels: list[float], key: str = "k") -> list[Point]:
    """One exact figure per point (a memory figure): no spread within a point."""
    return [Point(label=f"v{i}", order=f"{i:04d}", machine="m", key=key, samples=[v], median=v, run_dir="",
                  case_label="baseline") for i, v in enumerate(levels)]


def test_a_30_percent_step_is_found_where_it_happened_and_confirmed():
    [step] = detect(series([1.0] * 6 + [1.3] * 6))
    assert (step.before_label, step.after_label) == ("v5", "v6")
    assert step.change == pytest.approx(0.3, abs=0.03)
    assert step.verdict == "slower" and step.test == "mann-whitney"


def test_a_rate_that_falls_is_slower_and_one_that_rises_faster():
    tokens = rate("tokens_per_s", "Tokens/s", of="step_time_s")
    assert [s.verdict for s in detect(series([100.0] * 5 + [70.0] * 5), tokens)] == ["slower"]
    assert [s.verdict for s in detect(series([70.0] * 5 + [100.0] * 5), tokens)] == ["faster"]


@pytest.mark.parametrize("seed", range(5))
def test_a_flat_noisy_series_has_no_step(seed):
    assert detect(series([1.0] * 12, noise=0.04, seed=seed)) == []


def test_a_shift_that_reverts_at_the_next_point_is_an_outlier_not_a_step():
    steps = detect(series([1.0] * 5 + [1.6] + [1.0] * 5))
    assert [(s.verdict, s.after_label) for s in steps] == [("outlier", "v5")]
    assert not steps[0].confirmed


def test_a_step_then_an_outlier_keeps_the_step():
    steps = detect(series([1.0] * 5 + [1.3] * 3 + [2.0] + [1.3] * 3))
    assert [(s.verdict, s.after_label) for s in steps] == [("slower", "v5"), ("outlier", "v8")]


def test_a_step_smaller_than_the_minimum_effect_is_no_step():
    assert detect(series([1.0] * 6 + [1.03] * 6, noise=0.002)) == []


def test_too_few_samples_either_side_cannot_tell():
    assert confirm([1.0], [1.4]) == "cannot tell"
    assert confirm([1.0, 1.01], [1.4, 1.41]) == "slower"  # ranges apart, judged without a p-value


def test_overlapping_samples_cannot_tell():
    assert confirm([1.0, 1.2, 1.4, 1.1, 1.3], [1.1, 1.5, 1.2, 1.45, 1.35]) == "cannot tell"


def test_an_exact_memory_step_is_hungrier_on_the_threshold_alone():
    peak = METRICS["peak_memory_bytes"]
    [step] = detect(exact([1e9] * 4 + [1.5e9] * 4), peak)
    assert step.verdict == "hungrier" and step.test == "exact"
    assert detect(exact([1e9] * 8), peak) == []


def test_each_comparability_key_is_its_own_series():
    points = series([1.0] * 6 + [1.3] * 6, key="laptop") + series([2.0] * 12, key="studio", seed=1)
    assert [s.key for s in detect(points)] == ["laptop"]


def test_footprint_growing_under_a_flat_mlx_peak_is_a_finding():
    process, peak = METRICS["process_peak_bytes"], METRICS["peak_memory_bytes"]
    history = {"process_peak_bytes": series([2.0e9] * 5 + [3.0e9] * 5, noise=0.01),
               "peak_memory_bytes": exact([1e9] * 10)}
    steps = {"process_peak_bytes": detect(history["process_peak_bytes"], process),
             "peak_memory_bytes": detect(history["peak_memory_bytes"], peak)}
    [finding] = layer_findings(history, steps)
    assert finding.startswith("process_peak_bytes +") and "at v5" in finding
    assert "MLX's peak moved 0.0%" in finding and "memory MLX does not count" in finding


def test_footprint_growing_with_mlx_peak_is_no_finding_and_unmeasured_peak_cannot_tell():
    process = METRICS["process_peak_bytes"]
    grown = series([2.0e9] * 5 + [3.0e9] * 5, noise=0.01)
    steps = {"process_peak_bytes": detect(grown, process)}
    both = {"process_peak_bytes": grown, "peak_memory_bytes": exact([1e9] * 5 + [1.5e9] * 5)}
    assert layer_findings(both, steps) == []
    [unmeasured] = layer_findings({"process_peak_bytes": grown}, steps)
    assert "cannot tell whether MLX's peak moved: not measured" in unmeasured


def test_the_fit_is_one_segment_per_level():
    values = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0]
    assert fit_segments(np.array(values), np.full(8, 10.0)) == [(0, 3), (3, 6), (6, 8)]


def drifting(levels: list[float], drift: float, seed: int) -> list[Point]:
    """Points whose level also wanders run to run by ``drift`` (a machine that is not the same each day)."""
    rng = random.Random(seed)
    points = []
    for i, level in enumerate(levels):
        run_level = level * (1 + rng.gauss(0, drift))
        values = sorted(run_level * (1 + rng.gauss(0, 0.02)) for _ in range(5))
        points.append(Point(label=f"v{i}", order=f"{i:04d}", machine="m", key="k", samples=values,
                            median=values[2], run_dir="", case_label="baseline"))
    return points


def test_on_a_drifting_machine_a_10_percent_step_is_found_and_flat_history_rarely_flagged():
    trials = range(100)
    found = sum(any(s.confirmed and s.after_label == "v5" for s in detect(drifting([1.0] * 5 + [1.1] * 5, 0.01, k)))
                for k in trials)
    false = sum(any(s.confirmed for s in detect(drifting([1.0] * 10, 0.01, k))) for k in trials)
    assert found >= 95 and false <= 1
