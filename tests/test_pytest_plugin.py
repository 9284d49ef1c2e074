"""The mlxbench pytest plugin, the pytest-benchmark JSON reader and the CI workflow,
through real pytest runs in subprocesses on real MLX."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from mlxbench.errors import UserError
from mlxbench.machine.device import device_fallback
from mlxbench.results.pytest_json import MEMORY_FIGURES, to_run

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
# pytester gives each run a fresh HOME: keep the BLAS shim cache of this one.
MLXBENCH_CACHE = os.environ.get("MLXBENCH_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "mlxbench")
WORKFLOW = ROOT / ".github" / "workflows" / "bench.yml"
MiB = 2**20

# A user's benchmark file, written with no knowledge of mlxbench.
USER_BENCHMARKS = '''
import mlx.core as mx
import pytest


@pytest.fixture
def big_model():
    # 64 MiB made and freed before the test's call: not part of the benchmark.
    junk = mx.zeros((16 * 2**20,), dtype=mx.float32)
    mx.eval(junk)
    del junk
    mx.clear_cache()


def test_step_after_big_setup(benchmark, big_model):
    def step():
        mx.eval(mx.random.normal((1024, 1024)) * 2)  # 4 MiB per array

    benchmark.pedantic(step, rounds=3, warmup_rounds=1)


@pytest.mark.parametrize("n", [128])
def test_plain_call(benchmark, n):
    benchmark(lambda: mx.eval(mx.ones((n, n)) + 1))
'''


def plugin_registered() -> bool:
    return any(ep.value == "mlxbench_pytest" for ep in metadata.entry_points(group="pytest11"))


def run_pytest(*args: str, cwd: Path, env_vars: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m pytest`` in a fresh process, with the plugin as users get it."""
    load_plugin = [] if plugin_registered() else ["-p", "mlxbench_pytest"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *load_plugin, "-p", "no:cacheprovider", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env_vars or {})},
    )


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("user_suite")
    (directory / "test_user_benchmarks.py").write_text(USER_BENCHMARKS)
    return directory


@pytest.fixture(scope="module")
def bench_json(user_dir) -> Path:
    out = run_pytest("--benchmark-only", "--benchmark-json=bench.json", "-q", cwd=user_dir,
                     env_vars={"MLXBENCH_DEVICE": "cpu"})
    assert out.returncode == 0, out.stdout + out.stderr
    return user_dir / "bench.json"


@pytest.fixture(scope="module")
def benchmarks(bench_json) -> dict[str, dict]:
    return {b["name"]: b for b in json.loads(bench_json.read_text())["benchmarks"]}


def write_scaled(bench_json: Path, path: Path, scale: float) -> Path:
    """``bench_json`` with every memory figure times ``scale`` (as if a change had grown them)."""
    data = json.loads(bench_json.read_text())
    for bench in data["benchmarks"]:
        for key in MEMORY_FIGURES:
            bench["extra_info"][key] = int(bench["extra_info"][key] * scale)
    path.write_text(json.dumps(data))
    return path


# --- memory figures -------------------------------------------------------------------

def test_every_benchmark_gets_the_three_memory_figures_without_code_changes(benchmarks):
    for bench in benchmarks.values():
        for key in MEMORY_FIGURES:
            assert isinstance(bench["extra_info"][key], int), (bench["name"], key)


def test_peak_memory_counts_what_the_timed_calls_allocate(benchmarks):
    assert benchmarks["test_step_after_big_setup"]["extra_info"]["peak_memory_bytes"] >= 4 * MiB


def test_peak_memory_leaves_out_what_a_fixture_built_before_the_call(benchmarks):
    assert benchmarks["test_step_after_big_setup"]["extra_info"]["peak_memory_bytes"] < 64 * MiB


def test_peak_rss_is_the_process_resident_size(benchmarks):
    assert benchmarks["test_plain_call[128]"]["extra_info"]["peak_rss_bytes"] > 50 * MiB


def test_environment_in_the_json_names_the_mlx_device_and_why(bench_json):
    env = json.loads(bench_json.read_text())["machine_info"]["mlxbench"]
    assert env["mlx"]["device"] == "cpu"
    assert env["env_id"]
    assert any("MLXBENCH_DEVICE=cpu" in note for note in env["notes"])


def test_no_mlx_memory_option_leaves_extra_info_alone(user_dir):
    out = run_pytest("--benchmark-only", "--no-mlx-memory", "--benchmark-json=plain.json", "-q",
                     "-k", "plain_call", cwd=user_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    bench = json.loads((user_dir / "plain.json").read_text())["benchmarks"][0]
    assert "peak_memory_bytes" not in bench["extra_info"]


# --- only benchmarks that use MLX get figures -------------------------------------------

MIXED_BENCHMARKS = '''
import pytest


def test_pure_python(benchmark):
    benchmark.extra_info["foo"] = "bar"
    benchmark(lambda: sum(range(100)))


@pytest.mark.mlx_memory
def test_imports_mlx_itself(benchmark):
    import mlx.core as mx

    benchmark.pedantic(lambda: mx.eval(mx.ones((256, 256)) * 2), rounds=2)
'''


def test_only_benchmarks_that_use_mlx_get_figures_and_a_plain_one_keeps_its_extra_info(pytester, monkeypatch):
    monkeypatch.setenv("MLXBENCH_CACHE", MLXBENCH_CACHE)
    monkeypatch.setenv("MLXBENCH_DEVICE", "cpu")
    pytester.makepyfile(test_mixed=MIXED_BENCHMARKS)
    load_plugin = [] if plugin_registered() else ["-p", "mlxbench_pytest"]
    result = pytester.runpytest_subprocess(*load_plugin, "-p", "no:cacheprovider", "--benchmark-json=mixed.json",
                                           timeout=300)
    result.assert_outcomes(passed=2)
    extra = {b["name"]: b["extra_info"] for b in json.loads((pytester.path / "mixed.json").read_text())["benchmarks"]}
    assert extra["test_pure_python"] == {"foo": "bar"}
    assert all(isinstance(extra["test_imports_mlx_itself"][key], int) for key in MEMORY_FIGURES)
    result.stdout.fnmatch_lines(["=* mlxbench =*", "MLX * on cpu (CPU backend), BLAS *; 1 benchmark(s) *"])


def test_the_plugin_uses_no_private_pytest_benchmark_api():
    source = (ROOT / "mlxbench_pytest.py").read_text()
    assert "._" not in source.replace("mlxbench_pytest", ""), "a private attribute of another package"


# --- the device on hosted macOS runners ------------------------------------------------

def test_virtual_metal_gpu_of_a_hosted_runner_falls_back_to_the_cpu():
    note = device_fallback("darwin", True, True, "Apple Paravirtual device")
    assert note and "virtual GPU" in note and "CPU device" in note


def test_mac_without_a_metal_device_falls_back_to_the_cpu():
    assert "no Metal device" in device_fallback("darwin", True, False, "")


def test_a_real_apple_gpu_is_kept():
    assert device_fallback("darwin", True, True, "Apple M2 Max") is None


def test_mlxbench_device_gpu_keeps_even_a_virtual_gpu():
    assert device_fallback("darwin", True, True, "Apple Paravirtual device", wanted="gpu") is None


def test_linux_cpu_backend_needs_no_fallback():
    assert device_fallback("linux", False, False, "") is None


# --- judging: mlxbench compare on the JSON files ---------------------------------------

def test_compare_judges_a_memory_growth_between_two_benchmark_json_files(bench_json, tmp_path):
    grown = write_scaled(bench_json, tmp_path / "grown.json", scale=2.0)
    out = subprocess.run([sys.executable, "-m", "mlxbench", "compare", str(bench_json), str(grown)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "peak_memory_bytes (test_step_after_big_setup)" in out.stdout


# --- tests/benchmarks in the default run ----------------------------------------------

def test_default_test_run_skips_the_shipped_benchmarks():
    out = run_pytest("-q", "-rs", "-k", "test_matmul_fp32", cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "skipped" in out.stdout and "passed" not in out.stdout
    assert "pytest --benchmark-only tests/benchmarks" in out.stdout


def test_benchmark_only_runs_the_shipped_benchmarks():
    out = run_pytest("--benchmark-only", "-q", "-k", "256", "tests/benchmarks/test_matmul_bench.py", cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout


@pytest.mark.skipif(not plugin_registered(), reason="pyproject.toml lacks [project.entry-points.pytest11] "
                    "mlxbench = \"mlxbench_pytest\" (then reinstall)")
def test_plugin_loads_through_its_entry_point_without_dash_p():
    out = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert "--no-mlx-memory" in out.stdout


# --- pytest-benchmark JSON as records -------------------------------------------------

def test_json_becomes_one_record_per_benchmark_with_memory_metrics(bench_json, benchmarks):
    records, env, suite = to_run(bench_json)
    assert len(records) == len(benchmarks)
    for record in records:
        assert record.status == "ok"
        assert record.env_id == env["env_id"]
        assert all(isinstance(record.metrics[key], int) for key in MEMORY_FIGURES)
    assert suite["name"] == "bench"


def test_suite_says_which_pytest_command_reproduces_the_figures(bench_json):
    _, _, suite = to_run(bench_json)
    assert suite["command"].startswith("pytest ")
    assert suite["command"].endswith("--benchmark-only --benchmark-json=bench.json -q")


def test_record_step_time_keeps_every_timed_round(bench_json):
    records, _, _ = to_run(bench_json)
    step = next(r for r in records if r.variant == "test_step_after_big_setup").metrics["step_time_s"]
    assert step["n"] == 3 and len(step["samples"]) == 3
    assert step["p10"] <= step["median"] <= step["p90"]


def test_each_benchmark_is_its_own_variant_with_its_parametrize_values_as_params(bench_json):
    records, _, _ = to_run(bench_json)
    plain = next(r for r in records if r.variant == "test_plain_call[128]")
    assert plain.params == {"n": 128}
    assert plain.sweep == {}


def test_json_without_benchmarks_is_a_user_error_naming_the_file(tmp_path):
    path = tmp_path / "records.json"
    path.write_text("[1, 2]")
    with pytest.raises(UserError, match=rf"{path}: benchmarks: expected a pytest-benchmark JSON file"):
        to_run(path)


def test_json_without_per_round_timings_is_a_user_error(bench_json, tmp_path):
    data = json.loads(bench_json.read_text())
    stripped = copy.deepcopy(data)
    del stripped["benchmarks"][0]["stats"]["data"]
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(stripped))
    with pytest.raises(UserError, match=r"benchmarks\[0\]\.stats\.data: expected the per-round timings"):
        to_run(path)


def test_mlxbench_report_renders_a_pytest_benchmark_json(bench_json, tmp_path):
    out = subprocess.run([sys.executable, "-m", "mlxbench", "report", str(bench_json)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert list(tmp_path.rglob("*.html"))


# --- the CI workflow ------------------------------------------------------------------

@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def run_lines(workflow: dict) -> list[str]:
    return [step["run"].strip() for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]


def test_workflow_runs_on_an_apple_silicon_macos_runner(workflow):
    [job] = workflow["jobs"].values()
    assert job["runs-on"] in ("macos-14", "macos-15", "macos-latest")


def test_workflow_runs_the_tests_the_benchmarks_and_the_report(workflow):
    lines = run_lines(workflow)
    assert lines[0] == "make test"
    assert any("--benchmark-only tests/benchmarks --benchmark-json=bench.json" in line for line in lines)
    assert any(line.startswith(".venv/bin/mlxbench report bench.json") for line in lines)


def test_workflow_uploads_the_report_and_the_json(workflow):
    [job] = workflow["jobs"].values()
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert "reports/" in upload["with"]["path"] and "bench.json" in upload["with"]["path"]


def test_every_workflow_command_is_in_the_docs(workflow):
    docs = (ROOT / "README.md").read_text() + (ROOT / "docs" / "ci.md").read_text()
    missing = [line for line in run_lines(workflow) if line not in docs]
    assert not missing, f"README.md and docs/ci.md lack the workflow's commands: {missing}"
