"""mlxbench compare: matched cases, judged figures only, tests that can fire, one-sided cases, exit status."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

import sample_runs
from mlxbench import stats
from mlxbench.cli import main as cli_main
from mlxbench.results import compare as compare_module
from mlxbench.results.run import Run


def _scaled(records, case_id, metric, factor):
    """A copy of the records with one case's metric multiplied (timings: every sample)."""
    out = copy.deepcopy(records)
    for r in out:
        if r.case_id == case_id:
            figure = r.metrics[metric]
            if isinstance(figure, dict):
                r.metrics[metric] = stats.summarize([v * factor for v in figure["samples"]])
            else:
                r.metrics[metric] = figure * factor
    return out


def _run(records) -> Run:
    return Run(Path("run"), records, {}, sample_runs.SUITE)


class compare:  # the module's API over record lists, as these tests read best
    exit_status = staticmethod(compare_module.exit_status)

    @staticmethod
    def compare_runs(base, new, threshold=compare_module.DEFAULT_THRESHOLD_PCT):
        return compare_module.compare_runs(_run(base), _run(new), threshold)


@pytest.fixture
def records():
    return sample_runs.training_records()


def test_a_run_compared_with_itself_has_no_regression(records):
    assert compare.exit_status(compare.compare_runs(records, records)) == 0


def test_doubled_step_time_is_a_significant_regression_named_by_metric(records):
    result = compare.compare_runs(records, _scaled(records, "base-256", "step_time_s", 2.0))
    names = {(r["case_id"], r["metric"]) for r in result["regressions"]}
    assert ("base-256", "step_time_s") in names
    assert compare.exit_status(result) == 1


def test_timings_are_judged_by_mann_whitney_on_the_samples(records):
    result = compare.compare_runs(records, _scaled(records, "base-256", "step_time_s", 2.0))
    step = next(x for c in result["cases"] if c["case_id"] == "base-256"
                for x in c["metrics"] if x["metric"] == "step_time_s")
    assert step["test"] == "mann-whitney" and step["p"] < 0.01 and step["ratio"] == pytest.approx(2.0)


def test_doubled_peak_memory_is_a_regression_by_threshold_alone(records):
    result = compare.compare_runs(records, _scaled(records, "gcm4-256", "peak_memory_bytes", 2.0))
    (regression,) = result["regressions"]
    assert regression["metric"] == "peak_memory_bytes" and regression["p"] is None


def test_a_change_under_the_threshold_does_not_count(records):
    result = compare.compare_runs(records, _scaled(records, "gcm4-256", "peak_memory_bytes", 1.03))
    assert result["regressions"] == []


def test_a_threshold_can_be_raised_past_a_change(records):
    result = compare.compare_runs(records, _scaled(records, "gcm4-256", "peak_memory_bytes", 1.3), 50.0)
    assert result["regressions"] == []


def test_a_large_but_noisy_timing_change_is_not_significant(records):
    base = copy.deepcopy(records)
    new = copy.deepcopy(records)
    base[0].metrics["step_time_s"] = stats.summarize([1.0, 1.5, 0.8, 1.2, 1.4])
    new[0].metrics["step_time_s"] = stats.summarize([1.1, 1.6, 0.9, 1.3, 1.45])
    assert not any(r["metric"] == "step_time_s" for r in compare.compare_runs(base, new)["regressions"])


def test_a_faster_step_is_an_improvement_not_a_regression(records):
    result = compare.compare_runs(records, _scaled(records, "base-256", "step_time_s", 0.5))
    assert result["regressions"] == []
    assert any(r["metric"] == "step_time_s" for r in result["improvements"])


def test_a_rate_is_judged_through_its_timing_not_twice(records):
    new = _scaled(records, "base-256", "step_time_s", 2.0)
    new[0].metrics["tokens_per_s"] /= 2
    regressions = compare.compare_runs(records, new)["regressions"]
    assert [r["metric"] for r in regressions] == ["step_time_s"]


def test_cases_in_only_one_run_are_listed(records):
    result = compare.compare_runs(records, records[1:])
    assert [c["case_id"] for c in result["only_in_base"]] == [records[0].case_id]
    assert result["only_in_new"] == []


def test_a_case_that_stopped_finishing_is_a_status_regression(records):
    new = copy.deepcopy(records)
    new[0].status, new[0].metrics, new[0].error = "error", {}, {"message": "boom", "traceback": ""}
    (regression,) = compare.compare_runs(records, new)["regressions"]
    assert regression["metric"] == "status" and regression["new"] == "error"


def test_the_last_record_of_a_rerun_case_is_the_one_compared(records):
    rerun = copy.deepcopy(records[0])
    records_with_retry = [*records, rerun]
    records_with_retry[0] = copy.deepcopy(records[0])
    records_with_retry[0].status, records_with_retry[0].metrics = "error", {}
    assert compare.compare_runs(records, records_with_retry)["regressions"] == []


def test_cli_exits_1_and_names_the_doubled_metric(tmp_path, records, capsys):
    base = sample_runs.write_run(tmp_path / "base", records)
    new = sample_runs.write_run(tmp_path / "new", _scaled(records, "mb2-256", "peak_memory_bytes", 2.0))
    assert cli_main(["compare", str(base), str(new)]) == 1
    out = capsys.readouterr().out
    assert "1 significant regression: peak_memory_bytes (micro-batch M=2, seq_length = 256)" in out


def test_the_output_says_the_timing_test_cannot_see_drift_between_runs(tmp_path, records, capsys):
    base = sample_runs.write_run(tmp_path / "base", records)
    cli_main(["compare", str(base), str(base)])
    out = capsys.readouterr().out
    assert "not the machine's drift between the two runs" in out and "--rounds N" in out and "history" in out


def test_cli_json_format_is_machine_readable(tmp_path, records, capsys):
    base = sample_runs.write_run(tmp_path / "base", records)
    assert cli_main(["compare", str(base), str(base), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["regressions"] == [] and len(data["cases"]) == len(records)


def test_cli_markdown_format_is_a_table(tmp_path, records, capsys):
    base = sample_runs.write_run(tmp_path / "base", records)
    cli_main(["compare", str(base), str(base), "--format", "md"])
    assert "| Case | Metric | Base | New | Ratio | Change | Test | Verdict |" in capsys.readouterr().out


def test_a_missing_run_directory_exits_2_with_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "mlxbench", "compare", str(tmp_path / "no"), str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "expected a run directory" in run.stderr


def _with_step_samples(records, base_samples, new_samples):
    base, new = copy.deepcopy(records), copy.deepcopy(records)
    for r in base:
        r.metrics["step_time_s"] = stats.summarize(base_samples)
    for r in new:
        r.metrics["step_time_s"] = stats.summarize(new_samples)
    return base, new


def test_with_three_samples_a_side_the_p_value_cannot_reach_001_so_it_says_so_and_uses_ranges(records):
    assert stats.smallest_p(3, 3) == pytest.approx(0.1)
    base, new = _with_step_samples(records, [1.0, 1.01, 0.99], [1.3, 1.31, 1.29])
    result = compare.compare_runs(base, new)
    step = next(x for x in result["regressions"] if x["metric"] == "step_time_s")
    assert step["test"] == "ranges" and "cannot judge at p < 0.01 with 3 + 3 samples" in step["note"]
    assert compare.exit_status(result) == 1


def test_with_three_samples_overlapping_ranges_are_not_a_regression(records):
    base, new = _with_step_samples(records, [1.0, 1.2, 0.9], [1.15, 1.3, 1.05])
    assert not any(x["metric"] == "step_time_s" for x in compare.compare_runs(base, new)["regressions"])


def test_one_sample_a_side_cannot_be_judged_and_the_summary_says_so(records, tmp_path, capsys):
    base, new = _with_step_samples(records, [1.0], [2.0])
    result = compare.compare_runs(base, new)
    assert not any(x["metric"] == "step_time_s" for x in result["regressions"])
    assert any(x["metric"] == "step_time_s" for x in result["cannot_judge"])
    a = sample_runs.write_run(tmp_path / "a", base)
    b = sample_runs.write_run(tmp_path / "b", new)
    assert cli_main(["compare", str(a), str(b)]) == 0
    assert "could not be judged: step_time_s" in capsys.readouterr().out


def test_diagnostics_never_make_compare_fail(records, tmp_path, capsys):
    new = copy.deepcopy(records)
    for r in new:
        r.metrics["cache_memory_bytes"] = 34_000_000
        r.metrics["other_processes_cpu_share"] = 0.4
        if "peak_rss_bytes" in r.metrics:
            r.metrics["peak_rss_bytes"] *= 1.3
    result = compare.compare_runs(records, new)
    assert result["regressions"] == [] and compare.exit_status(result) == 0
    judged = {x["metric"] for c in result["cases"] for x in c["metrics"]}
    assert not judged & {"cache_memory_bytes", "other_processes_cpu_share", "peak_rss_bytes"}
    a, b = sample_runs.write_run(tmp_path / "a", records), sample_runs.write_run(tmp_path / "b", new)
    assert cli_main(["compare", str(a), str(b)]) == 0
    assert "peak_rss_bytes (one sampled figure per case" in capsys.readouterr().out


def test_a_figure_that_vanished_or_became_nan_is_named(records):
    new = copy.deepcopy(records)
    del new[0].metrics["peak_memory_bytes"]
    new[1].metrics["peak_memory_bytes"] = float("nan")
    notes = {(x["case_id"], x["note"]) for x in compare.compare_runs(records, new)["cannot_judge"]}
    assert (records[0].case_id, "missing in the new run") in notes
    assert (records[1].case_id, "not a number in the new run") in notes


def test_runs_that_share_no_case_are_nothing_to_compare_exit_2(records, tmp_path, capsys):
    other = copy.deepcopy(records)
    for r in other:
        r.case_id = "other-" + r.case_id
    a, b = sample_runs.write_run(tmp_path / "a", records), sample_runs.write_run(tmp_path / "b", other)
    assert cli_main(["compare", str(a), str(b)]) == 2
    assert "nothing to compare" in capsys.readouterr().err


def test_json_output_is_strict_json(records, tmp_path, capsys):
    new = copy.deepcopy(records)
    new[0].metrics["peak_memory_bytes"] = float("inf")
    a, b = sample_runs.write_run(tmp_path / "a", records), sample_runs.write_run(tmp_path / "b", new)
    cli_main(["compare", str(a), str(b), "--format", "json"])
    json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
