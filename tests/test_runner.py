"""The runner, end to end: the real CLI in a subprocess, real worker processes, real MLX.

Two runs are shared by most tests (module fixtures): a 3 variants × 2 sizes matmul grid,
and a suite whose variants fail on purpose (tests/fixtures/faults.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from killed_runner import kill_after_first_record
from mlxbench.results import store
from mlxbench.results.record import latest_by_case

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def mlxbench(*args: str, check_status: int | None = None) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess."""
    done = subprocess.run([sys.executable, "-m", "mlxbench", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    if check_status is not None:
        assert done.returncode == check_status, done.stdout + done.stderr
    return done


def only_run_dir(root: Path) -> Path:
    (run_dir,) = [p for p in root.glob("*/*") if p.is_dir()]
    return run_dir


def by_variant(records: list[dict]) -> dict[tuple, dict]:
    return {(r.variant, tuple(r.sweep.values())): r for r in latest_by_case(records)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The 3 × 2 grid and the suite whose variants fail on purpose, run once, side by side
    (the faults run waits out a timeout): {name: (finished process, run dir)}."""
    started = {}
    for name in ("grid", "faults"):
        out = tmp_path_factory.mktemp(name)
        command = [sys.executable, "-m", "mlxbench", "run", f"tests/fixtures/{name}.yaml", "--out", str(out),
                   "--no-calibrate"]
        started[name] = (subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True), out)
    finished = {}
    for name, (proc, out) in started.items():
        stdout, stderr = proc.communicate(timeout=300)
        finished[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr),
                          only_run_dir(out))
    return finished


@pytest.fixture(scope="module")
def grid(runs):
    done, run_dir = runs["grid"]
    assert done.returncode == 0, done.stdout + done.stderr
    return done, run_dir


@pytest.fixture(scope="module")
def faults(runs):
    return runs["faults"]


def test_grid_runs_six_cases_each_ok_and_in_its_own_process(grid):
    _, run_dir = grid
    records = store.read_records(run_dir)
    assert len(records) == 6
    assert all(r.status == "ok" and r.inline is False for r in records)
    assert sorted(p.stem for p in (run_dir / "logs").glob("*.log")) == sorted(r.case_id for r in records)


def test_run_dir_holds_the_resolved_suite_env_and_records(grid):
    _, run_dir = grid
    assert run_dir.parent.name == "grid"
    assert store.read_env(run_dir)["env_id"] == store.read_records(run_dir)[0].env_id
    stored = (run_dir / store.SUITE).read_text()
    assert "variants:" in stored and "baseline: fp32" in stored


def test_baseline_cases_run_first(grid):
    _, run_dir = grid
    assert [r.variant for r in store.read_records(run_dir)][:2] == ["fp32", "fp32"]


def test_record_keeps_every_timed_sample_with_its_statistics(grid):
    _, run_dir = grid
    step_time = store.read_records(run_dir)[0].metrics["step_time_s"]
    assert len(step_time["samples"]) == step_time["n"] == 3
    assert step_time["p10"] <= step_time["median"] <= step_time["p90"]
    assert {"mean", "cv", "unstable"} <= set(step_time)


def test_record_has_memory_figures_timeline_and_leak_check(grid):
    _, run_dir = grid
    record = store.read_records(run_dir)[0]
    n = record.params["n"]
    assert record.metrics["peak_memory_bytes"] >= n * n * 4  # at least the float32 product
    assert record.metrics["peak_rss_bytes"] > 0
    assert [p["name"] for p in record.memory_timeline["phases"]] == ["setup", "warmup", "matmul"]
    assert record.leak["leaking"] is False


def test_variant_differing_only_in_equivalent_params_is_checked_against_its_baseline(grid):
    _, run_dir = grid
    cases = by_variant(store.read_records(run_dir))
    for n in (16, 32):
        check = cases[("compiled", (n,))].equivalence
        assert check["matches"] is True
        assert check["baseline_case_id"] == cases[("fp32", (n,))].case_id
    assert cases[("fp32", (16,))].equivalence is None
    assert cases[("bf16", (16,))].equivalence is None  # computes something else


def test_progress_names_each_case_and_ends_with_a_table_of_all(grid):
    done, run_dir = grid
    assert "[1/6] fp32 · n=16 … running" in done.stdout
    assert "[6/6] bf16 · n=32: ok" in done.stdout
    table = done.stdout.split("case id", 1)[1]
    assert all(r.case_id in table for r in store.read_records(run_dir))


def test_resume_of_a_finished_run_runs_no_case(grid):
    _, run_dir = grid
    done = mlxbench("run", "tests/fixtures/grid.yaml", "--resume", str(run_dir), "--no-calibrate", check_status=0)
    assert "6 of 6 cases already ok" in done.stdout
    assert len(store.read_records(run_dir)) == 6


def test_failed_cases_make_exit_status_1_and_the_others_still_finish_ok(faults):
    done, run_dir = faults
    assert done.returncode == 1
    cases = by_variant(store.read_records(run_dir))
    assert cases[("ok", ())].status == cases[("also ok", ())].status == "ok"
    assert len(cases) == 7


def test_each_case_runs_in_a_process_of_its_own(faults):
    _, run_dir = faults
    cases = by_variant(store.read_records(run_dir))
    pids = {cases[(v, ())].metrics["worker_pid"] for v in ("ok", "also ok")}
    assert len(pids) == 2


def test_a_case_that_raises_is_an_error_with_its_message_and_traceback(faults):
    _, run_dir = faults
    record = by_variant(store.read_records(run_dir))[("raises", ())]
    assert record.status == "error"
    assert record.error["message"] == "ValueError: injected failure in step"
    assert "faults.py" in record.error["traceback"]


def test_a_memory_error_is_recorded_as_oom(faults):
    _, run_dir = faults
    record = by_variant(store.read_records(run_dir))[("memory error", ())]
    assert record.status == "oom"
    assert "MemoryError" in record.error["message"]


def test_a_case_past_its_timeout_is_stopped_and_recorded_as_timeout(faults):
    _, run_dir = faults
    record = by_variant(store.read_records(run_dir))[("times out", ())]
    assert record.status == "timeout"
    assert record.error["message"].startswith("passed its timeout of 15 s")


def test_a_case_killed_by_a_signal_is_an_error_naming_the_signal(faults):
    _, run_dir = faults
    record = by_variant(store.read_records(run_dir))[("killed", ())]
    assert record.status == "error"
    assert record.error["message"] == "killed by signal SIGKILL"


def test_a_case_past_the_memory_limit_is_stopped_and_recorded_as_oom(faults):
    _, run_dir = faults
    record = by_variant(store.read_records(run_dir))[("hog", ())]
    assert record.status == "oom"
    assert "passed memory_limit_mb 1500" in record.error["message"]


def test_resume_reruns_only_failed_cases_and_readers_take_the_latest_line(faults):
    _, run_dir = faults
    before = len(store.read_records(run_dir))
    mlxbench("run", "tests/fixtures/faults.yaml", "--resume", str(run_dir), "--only", "raises", "--no-calibrate")
    records = store.read_records(run_dir)
    assert len(records) == before + 1
    assert records[-1].variant == "raises"
    assert len(latest_by_case(records)) == 7


def test_resume_of_a_missing_run_dir_is_bad_input(tmp_path):
    done = mlxbench("run", "tests/fixtures/grid.yaml", "--resume", str(tmp_path / "nope"), check_status=2)
    assert done.stderr == f"mlxbench: {tmp_path / 'nope'}: --resume: expected a run directory, got nothing there\n"


def test_resume_of_another_suites_run_is_bad_input(faults):
    _, run_dir = faults
    done = mlxbench("run", "tests/fixtures/grid.yaml", "--resume", str(run_dir), check_status=2)
    assert "expected a run of suite 'grid', got one of 'faults'" in done.stderr


def test_inline_mode_runs_in_the_runner_and_says_so(tmp_path):
    mlxbench("run", "tests/fixtures/grid.yaml", "--inline", "--only", "fp32", "--set", "n=16",
             "--out", str(tmp_path), "--no-calibrate", check_status=0)
    (record,) = store.read_records(only_run_dir(tmp_path))
    assert record.inline is True and record.status == "ok"


def test_dry_run_lists_the_cases_and_writes_nothing(tmp_path):
    done = mlxbench("run", "tests/fixtures/grid.yaml", "--dry-run", "--out", str(tmp_path), check_status=0)
    assert "6 cases" in done.stdout
    assert not any(tmp_path.iterdir())


def test_runner_killed_mid_run_leaves_valid_records_and_resume_completes_each_case_once(tmp_path):
    only = ["--only", "fp32", "bf16"]
    records_path, workers = kill_after_first_record(
        ["tests/fixtures/grid.yaml", *only, "--out", str(tmp_path), "--no-calibrate"], tmp_path, ROOT)
    # The worker of the case in flight sees its runner gone and stops on its own.
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
    lines = records_path.read_text().splitlines()
    assert 1 <= len(lines) < 4
    assert all(json.loads(line) for line in lines)
    mlxbench("run", "tests/fixtures/grid.yaml", *only, "--resume", str(records_path.parent), "--no-calibrate",
             check_status=0)
    records = store.read_records(records_path.parent)
    ids = [r.case_id for r in records]
    assert len(ids) == len(set(ids)) == 4
    assert all(r.status == "ok" for r in records)


def test_run_dir_keeps_the_command_that_made_it_for_the_report(runs):
    _, run_dir = runs["grid"]
    command = store.read_suite(run_dir)["command"]
    assert command.startswith("mlxbench run tests/fixtures/grid.yaml")
    assert "--no-calibrate" in command
