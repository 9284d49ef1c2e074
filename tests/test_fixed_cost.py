"""The fixed cost of a case: each worker's time from its process start to its first warm-up step, in its
record, in the report, and in the run's closing line with the share of wall time spent in steps."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from mlxbench.results import store

ROOT = Path(__file__).resolve().parent.parent


def test_each_case_records_its_fixed_cost_and_the_run_says_where_its_time_went(tmp_path):
    # 2048² float32 products (~0.1 s each here): steps long enough for their share of the run to show.
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mlxbench", "run", str(ROOT / "tests" / "fixtures" / "grid.yaml"),
                           "--only", "fp32", "--set", "n=2048", "--set", "repeat=8", "--no-calibrate", "--out", str(tmp_path / "results"),
                           "--report"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    outside_s = time.perf_counter() - started
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = (tmp_path / "results").glob("*/*")
    records = store.read_records(run_dir)
    for r in records:
        startup, steps = r.metrics["startup_s"], r.metrics["steps_s"]
        # Python, mlx and mlxbench's imports before the first step; the steps within the worker's own run.
        assert 0.1 < startup < 120 and 0 < steps < r.duration_s
    line = next(l for l in done.stdout.splitlines() if l.startswith("fixed cost per case"))
    median = sorted(r.metrics["startup_s"] for r in records)[len(records) // 2]
    assert f"{median:.1f} s (median of {len(records)}" in line
    share = int(re.search(r"; (\d+)% of the run's", line).group(1))
    # The run's own wall time is inside the subprocess's: its share is at least the steps over the latter.
    assert int(100 * sum(r.metrics["steps_s"] for r in records) / outside_s) <= share < 100
    report = next(l.split(":", 1)[1].strip() for l in done.stdout.splitlines() if l.startswith("report:"))
    assert f"fixed cost per case {median:.1f} s" in (tmp_path / report).read_text()
