"""Guardrails: a case over budget ends as oom with its reason, and the sweep goes on. The real test
runs the runner in a memory-limited cgroup, so the kernel itself stops the greedy case."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlxbench.errors import UserError
from mlxbench.machine import os_memory
from mlxbench.run import guardrails
from mlxbench.suite.schema import load

ROOT = Path(__file__).resolve().parent.parent
LIMIT_MB = 900  # the runner (~150 MB) and one worker (~250 MB with MLX imported) fit; 3 GB does not

HOG = '''
import mlx.core as mx
from mlxbench.workloads.base import Param, Workload


class Hog(Workload):
    """Holds ``mb`` MiB of MLX memory, written, once stepped."""

    name = "hog"
    params = (Param("mb", int, 8, minimum=1),)

    def step(self):
        self.held = mx.ones((self.p["mb"] * 2**20 // 4,))
        mx.eval(self.held)
'''

SUITE = """
name: guarded
workload: hog_module:Hog
warmup: 0
repeat: 1
timeout: 120
variants:
  small: {mb: 8}
  over budget: {mb: 3072}
  small again: {mb: 16}
"""


def memory_cgroup(tmp_name: str) -> Path:
    """A child of this process's memory cgroup (v1, else v2) limited to LIMIT_MB, or skip saying why."""
    if not sys.platform.startswith("linux"):
        pytest.skip("memory cgroups are Linux's")
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            group, limit_file = Path("/sys/fs/cgroup/memory") / path.lstrip("/") / tmp_name, "memory.limit_in_bytes"
            break
    else:
        path = next((l.split(":", 2)[2] for l in Path("/proc/self/cgroup").read_text().splitlines()
                     if l.startswith("0::")), None)
        if path is None:
            pytest.skip("neither a cgroup v1 memory controller nor cgroup v2 is mounted")
        group, limit_file = Path("/sys/fs/cgroup") / path.lstrip("/") / tmp_name, "memory.max"
    try:
        group.mkdir()
        (group / limit_file).write_text(str(LIMIT_MB * 2**20))
    except OSError as err:
        if group.exists():
            group.rmdir()
        pytest.skip(f"cannot make a memory-limited cgroup ({group}: {err.strerror}): needs a writable "
                    "cgroup v1 memory controller or cgroup v2 with the memory controller delegated")
    return group


@pytest.fixture
def limited_cgroup():
    group = memory_cgroup(f"mlxbench-test-{os.getpid()}")
    yield group
    group.rmdir()  # empty by now: the runner and its workers have ended


def test_a_case_over_a_real_memory_limit_ends_as_oom_with_its_reason_and_the_next_case_runs(
        tmp_path, limited_cgroup):
    (tmp_path / "hog_module.py").write_text(HOG)
    (tmp_path / "guarded.yaml").write_text(SUITE)
    out = tmp_path / "results"
    # The runner joins the cgroup before it starts Python: every worker it starts is inside too.
    command = (f"echo $$ > {limited_cgroup / 'cgroup.procs'} && exec {sys.executable} -m mlxbench run "
               f"{tmp_path / 'guarded.yaml'} --out {out} --no-calibrate")
    done = subprocess.run(["sh", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])})
    assert done.returncode == 1, done.stdout + done.stderr  # 1: a case failed
    (run_dir,) = [p for p in out.glob("*/*") if p.is_dir()]
    records = {r["variant"]: r for r in map(json.loads, (run_dir / "records.jsonl").read_text().splitlines())}
    assert records["over budget"]["status"] == "oom"
    assert "out-of-memory killer" in records["over budget"]["error"]["message"]
    assert records["small"]["status"] == records["small again"]["status"] == "ok"  # nothing else lost
    assert "OOM" in done.stdout and "small again: ok" in done.stdout


# --- the guardrails' own judgement ----------------------------------------------------------------


def case(**limits):
    from mlxbench.suite.schema import Case

    return Case(suite="s", workload="w", variant="v", sweep={}, params={}, seed=0, warmup=0, repeat=1,
                timeout_s=10.0, is_baseline=True, case_id="c", **limits)


@pytest.mark.skipif(not (sys.platform.startswith("linux") or sys.platform == "darwin"),
                    reason="reads swap through Linux's /proc or macOS's sysctl")
def test_swap_growth_past_the_limit_stops_the_case_in_words_with_what_the_worker_held():
    guard = guardrails.Guard(case(swap_limit_mb=1000), os.getpid())  # MB of 10⁶ bytes: 1 GB
    assert guard.check() is None  # swap has not grown by 1 GB since the guard started
    guard.swap_before -= 0.99e9  # under the limit: a MiB reading (1000 MiB = 1.05e9) would say the same,
    assert guard.check() is None
    guard.swap_before -= 0.04e9  # 1.03 GB: past 10⁹ bytes, short of 1000 MiB
    status, why = guard.check()
    assert status == "oom" and why.startswith("swap grew by 1.0 GB while the case ran, past swap_limit_mb 1000")
    assert "while the worker held" in why


def test_no_limits_means_no_guard():
    assert guardrails.Guard(case(), os.getpid()).check() is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PSI is Linux's")
def test_linux_pressure_levels_read_psi():
    assert not guardrails.level_reached({"pressure": 5.0, "pressure_full": 0.0}, "warn")
    assert guardrails.level_reached({"pressure": 12.0, "pressure_full": 0.0}, "warn")
    assert not guardrails.level_reached({"pressure": 40.0, "pressure_full": 2.0}, "critical")
    assert guardrails.level_reached({"pressure": 40.0, "pressure_full": 15.0}, "critical")


@pytest.mark.skipif(sys.platform != "darwin", reason="macOS's pressure levels: run on the macOS CI runner")
def test_macos_pressure_levels_read_the_kernel_level_and_default_limits_are_on():
    assert guardrails.level_reached({"pressure": 4}, "critical") and not guardrails.level_reached({"pressure": 2},
                                                                                                  "critical")
    assert guardrails.level_reached({"pressure": 2}, "warn")
    assert os_memory.DEFAULT_SWAP_LIMIT_MB == 1024 and os_memory.DEFAULT_PRESSURE_LIMIT == "critical"


def test_suite_guardrail_fields_are_validated_and_reach_every_case(tmp_path):
    from mlxbench.suite.schema import expand

    path = tmp_path / "s.yaml"
    path.write_text("name: s\nworkload: matmul\nswap_limit_mb: 512\npressure_limit: warn\n")
    (first, *_) = expand(load(path))
    assert (first.swap_limit_mb, first.pressure_limit) == (512, "warn")
    path.write_text("name: s\nworkload: matmul\npressure_limit: high\n")
    with pytest.raises(UserError, match=r"s.yaml:3: pressure_limit: expected one of 'warn', 'critical' or null"):
        load(path)
