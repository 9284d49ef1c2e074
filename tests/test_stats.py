"""Statistics: the significance test compare relies on."""

from __future__ import annotations

import math

import numpy as np
import pytest

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


def test_summarize_gives_the_median_the_deciles_and_flags_a_wide_spread():
    steady = stats.summarize([1.0, 1.01, 0.99, 1.0, 1.02])
    assert steady["median"] == 1.0 and steady["n"] == 5 and not steady["unstable"]
    assert stats.summarize([1.0, 2.0, 1.0, 2.0, 1.0])["unstable"]


def test_mean_and_stdev_are_the_sample_ones_and_one_value_has_no_spread():
    assert stats.mean_and_stdev([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert stats.mean_and_stdev([5.0]) == (5.0, 0.0)


def test_smallest_p_is_what_the_sample_sizes_allow():
    assert math.isclose(stats.smallest_p(3, 3), 0.1)
    assert math.isclose(stats.smallest_p(5, 5), 2 / 252)


def test_differ_uses_mann_whitney_when_p_can_reach_the_level():
    differs, p, test, note = stats.differ([1.0, 1.1, 1.05, 1.02, 1.08], [2.0, 2.1, 2.05, 2.02, 2.08])
    assert differs and test == "mann-whitney" and p < 0.01 and note == ""
    same = stats.differ([1.0, 1.1, 1.05, 1.02, 1.08], [1.01, 1.09, 1.04, 1.03, 1.07])
    assert same[0] is False and same[1] > 0.01


def test_differ_falls_back_to_ranges_and_says_it_cannot_judge_at_the_level():
    differs, p, test, note = stats.differ([1.0, 1.1, 1.05], [2.0, 2.1, 2.05])
    assert differs and p is None and test == "ranges" and "cannot judge at p < 0.01 with 3 + 3 samples" in note
    assert stats.differ([1.0, 2.0, 1.5], [1.2, 2.1, 1.6])[0] is False  # overlapping ranges
    assert stats.differ([1.0], [2.0, 3.0])[0] is None  # cannot tell at all


def test_straddles_says_cannot_tell_when_the_values_reach_across():
    assert stats.straddles([0.98, 0.99], 0.97) == "above"
    assert stats.straddles([0.90, 0.95], 0.97) == "below"
    assert stats.straddles([0.95, 0.99], 0.97) == stats.straddles([], 0.97) == "cannot tell"


def test_median_against_judges_the_interval_not_the_median_alone():
    median, low, high, where = stats.median_against([1.00, 1.01, 0.99, 1.02, 1.00, 1.01], 0.9)
    assert where == "above" and low <= median <= high
    assert stats.median_against([0.8, 1.2, 0.85, 1.15, 0.9, 1.1], 1.0)[3] == "cannot tell"


@pytest.mark.parametrize("n", [2, 3, 10, 57])
def test_leak_slope_is_scipys_theil_sen_slope(n):
    from scipy.stats import theilslopes

    values = np.random.default_rng(n).normal(size=n).cumsum() * 1e6
    assert math.isclose(stats.leak_slope(list(values)), float(theilslopes(values)[0]), rel_tol=1e-12)


def test_leak_slope_ignores_a_one_off_jump_and_sees_steady_growth():
    assert stats.leak_slope([100, 200, 200, 200, 200, 200]) == 0.0  # a buffer that first appears on step 2
    assert math.isclose(stats.leak_slope([0, 10, 20, 30, 40]), 10.0)


def test_alternating_rounds_run_abba():
    assert stats.alternating(["a", "b"], 3) == [(1, "a"), (1, "b"), (2, "b"), (2, "a"), (3, "a"), (3, "b")]
    assert stats.order_of_round(["a", "b", "c"], 2) == ["c", "b", "a"]


def test_best_by_median_is_robust_to_one_outlier():
    assert stats.best_by_median({"x": [10, 10, 1000], "y": [11, 11, 11]}) == "y"
    assert stats.best_by_median({"x": []}) is None
