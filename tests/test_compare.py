"""mlxbench compare: matched cases, significance, one-sided cases, exit status."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

import sample_runs
from mlxbench.results import compare
from mlxbench import stats
from mlxbench.cli import main as cli_main


def _scaled(records, case_id, metric, factor):
    """A copy of the records with one case's metric multiplied (timings: every sample)."""
    out = copy.deepcopy(records)
    for r in out:
        if r["case_id"] == case_id:
            figure = r["metrics"][metric]
            if isinstance(figure, dict):
                r["metrics"][metric] = stats.summarize([v * factor for v in figure["samples"]])
            else:
                r["metrics"][metric] = figure * factor
    return out


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
    assert step["tested"] == "mann-whitney" and step["p"] < 0.01 and step["ratio"] == pytest.approx(2.0)


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
    base[0]["metrics"]["step_time_s"] = stats.summarize([1.0, 1.5, 0.8, 1.2, 1.4])
    new[0]["metrics"]["step_time_s"] = stats.summarize([1.1, 1.6, 0.9, 1.3, 1.45])
    assert not any(r["metric"] == "step_time_s" for r in compare.compare_runs(base, new)["regressions"])


def test_a_faster_step_is_an_improvement_not_a_regression(records):
    result = compare.compare_runs(records, _scaled(records, "base-256", "step_time_s", 0.5))
    assert result["regressions"] == []
    assert any(r["metric"] == "step_time_s" for r in result["improvements"])


def test_lower_throughput_is_a_regression_tested_on_the_step_time_samples(records):
    new = _scaled(records, "base-256", "step_time_s", 2.0)
    new[0]["metrics"]["tokens_per_s"] /= 2
    tokens = next(r for r in compare.compare_runs(records, new)["regressions"] if r["metric"] == "tokens_per_s")
    assert tokens["tested"] == "mann-whitney"


def test_cases_in_only_one_run_are_listed(records):
    result = compare.compare_runs(records, records[1:])
    assert [c["case_id"] for c in result["only_in_base"]] == [records[0]["case_id"]]
    assert result["only_in_new"] == []


def test_a_case_that_stopped_finishing_is_a_status_regression(records):
    new = copy.deepcopy(records)
    new[0].update(status="error", metrics={}, error={"message": "boom", "traceback": ""})
    (regression,) = compare.compare_runs(records, new)["regressions"]
    assert regression["metric"] == "status" and regression["new"] == "error"


def test_the_last_record_of_a_rerun_case_is_the_one_compared(records):
    rerun = copy.deepcopy(records[0])
    records_with_retry = [*records, rerun]
    records_with_retry[0] = {**records[0], "status": "error", "metrics": {}}
    assert compare.compare_runs(records, records_with_retry)["regressions"] == []


def test_cli_exits_1_and_names_the_doubled_metric(tmp_path, records, capsys):
    base = sample_runs.write_run(tmp_path / "base", records)
    new = sample_runs.write_run(tmp_path / "new", _scaled(records, "mb2-256", "peak_memory_bytes", 2.0))
    assert cli_main(["compare", str(base), str(new)]) == 1
    out = capsys.readouterr().out
    assert "1 significant regression: peak_memory_bytes (micro-batch M=2, seq_length = 256)" in out


def test_cli_json_format_is_machine_readable(tmp_path, records, capsys):
    base = sample_runs.write_run(tmp_path / "base", records)
    assert cli_main(["compare", str(base), str(base), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["regressions"] == [] and len(data["cases"]) == len(records)


def test_cli_markdown_format_is_a_table(tmp_path, records, capsys):
    base = sample_runs.write_run(tmp_path / "base", records)
    cli_main(["compare", str(base), str(base), "--format", "md"])
    assert "| Case | Metric | Base | New | Ratio | Change | P | Verdict |" in capsys.readouterr().out


def test_a_missing_run_directory_exits_2_with_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "mlxbench", "compare", str(tmp_path / "no"), str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "expected a run directory" in run.stderr
