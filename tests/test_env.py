"""`mlxbench env` and the optimized-BLAS loading, through the real command line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlxbench.machine import blas
from mlxbench.machine import env


def run_cli(*args, env_vars=None):
    environ = {**os.environ, **(env_vars or {})}
    return subprocess.run([sys.executable, "-m", "mlxbench", *args], capture_output=True, text=True,
                          env=environ, timeout=120)


@pytest.fixture(scope="module")
def env_json():
    out = run_cli("env", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_env_json_has_every_field_a_run_records(env_json):
    for key in ("os", "machine", "cpu", "memory_total_bytes", "mlx", "mlx_lm", "python", "blas", "mlxbench", "env_id"):
        assert key in env_json
    assert env_json["cpu"]["logical_cores"] >= 1
    assert env_json["memory_total_bytes"] > 2**30
    assert env_json["mlx"]["device"] in ("cpu", "gpu")
    assert env_json["mlx"]["backend"] in ("CPU", "Metal", "CUDA")
    assert env_json["mlx_lm"]["version"]


def test_env_calibration_is_measured_and_labelled(env_json):
    cal = env_json["calibration"]
    assert cal["measured"] is True
    assert cal["matmul_fp32_gflops"] > 0
    assert cal["memory_read_gbps"] > 0 and cal["memory_read_method"] and cal["matmul_method"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the BLAS swap is Linux-only")
def test_env_reports_optimized_blas_on_linux(env_json):
    assert env_json["mlx"]["backend"] == "CPU"
    assert env_json["blas"]["optimized"] is True
    assert "OpenBLAS" in env_json["blas"]["name"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the BLAS swap is Linux-only")
def test_this_process_maps_openblas_once_mlx_core_is_imported():
    import mlx.core  # noqa: F401  (mlxbench loads the BLAS just before it, not at its own import)

    maps = Path("/proc/self/maps").read_text()
    assert "openblas" in maps.lower()
    assert blas.load().optimized


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the BLAS swap is Linux-only")
def test_openblas_loads_without_a_system_libgfortran(tmp_path):
    # A fresh cache forces the libgfortran shim to be built from MLX's bundled copy.
    code = "import mlxbench.machine.blas as b, json; print(json.dumps(b.load().to_dict()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "MLXBENCH_CACHE": str(tmp_path)}, timeout=60)
    info = json.loads(out.stdout)
    assert info["optimized"], info["notes"]


def test_reference_blas_is_measured_but_warned_about_once():
    out = run_cli("env", "--no-calibrate", env_vars={"MLXBENCH_BLAS": "bundled"})
    assert out.returncode == 0
    if sys.platform.startswith("linux"):
        assert out.stderr.count("REFERENCE BLAS") == 1
        assert "NOT OPTIMIZED" in out.stdout


def test_env_id_is_stable_for_the_same_machine(env_json):
    again = env.capture(calibrate=False)
    assert again["env_id"] == env_json["env_id"]


def test_unknown_command_exits_2():
    out = run_cli("frobnicate")
    assert out.returncode == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the BLAS swap is Linux-only")
def test_a_shim_built_through_a_symlinked_venv_outlives_the_link(tmp_path):
    bundled = blas._bundled_gfortran()
    if bundled is None:
        pytest.skip("this MLX wheel bundles no libgfortran")
    link = tmp_path / "worktree-libs"
    link.symlink_to(bundled.resolve().parent)
    os.environ["MLXBENCH_CACHE"], saved = str(tmp_path / "cache"), os.environ.get("MLXBENCH_CACHE")
    try:
        shim = blas._gfortran_shim(link / bundled.name)
    finally:
        os.environ.pop("MLXBENCH_CACHE") if saved is None else os.environ.update(MLXBENCH_CACHE=saved)
    link.unlink()
    loaded = subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(shim)!r})"],
                            capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
