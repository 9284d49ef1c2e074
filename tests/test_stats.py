"""Statistics: the significance test compare relies on."""

from __future__ import annotations

import math

import numpy as np

from mlxbench import stats


def test_clearly_separated_five_sample_runs_are_significant_at_one_percent():
    assert stats.mann_whitney_p([1.00, 1.02, 0.99, 1.01, 1.03], [2.00, 2.04, 1.98, 2.02, 2.06]) < 0.01


def test_overlapping_samples_are_not_significant():
    assert stats.mann_whitney_p([1.0, 1.3, 0.9, 1.2, 1.1], [1.05, 1.35, 0.95, 1.25, 1.4]) > 0.01


def test_identical_samples_give_p_of_one():
    assert stats.mann_whitney_p([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]) == 1.0


def test_three_samples_a_side_can_never_reach_one_percent():
    # The exact test's smallest two-sided p with 3 vs 3 is 2/20: a reason to time 5+ steps.
    assert stats.mann_whitney_p([1.0, 1.1, 1.2], [5.0, 5.1, 5.2]) >= 0.1


def test_an_empty_side_gives_nan():
    assert math.isnan(stats.mann_whitney_p([], [1.0, 2.0]))


def test_relative_change_is_signed_against_the_base():
    assert stats.relative_change(600, 1000) == -0.4
    assert stats.relative_change(1.25, 1.0) == 0.25


def test_relative_change_without_a_base_is_none():
    assert stats.relative_change(1.0, 0) is None
    assert stats.relative_change(None, 1.0) is None


def test_median_interval_contains_the_median_and_narrows_with_more_values():
    rng = np.random.default_rng(1)
    few, many = rng.normal(1.0, 0.05, 8), rng.normal(1.0, 0.05, 200)
    low, high = stats.median_interval(few)
    assert low <= float(np.median(few)) <= high
    wide, narrow = high - low, np.subtract(*stats.median_interval(many)[::-1])
    assert narrow < wide / 2


def test_median_interval_is_reproducible_and_exact_for_constant_values():
    values = [0.9, 1.1, 1.0, 0.95, 1.05]
    assert stats.median_interval(values) == stats.median_interval(values)
    assert stats.median_interval([2.0] * 6) == (2.0, 2.0)
