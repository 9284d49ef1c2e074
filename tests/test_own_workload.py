"""A user's own ``module:Class`` workload: reported from its declarations alone, and compared honestly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "workloads"


def mlxbench(*args, cwd, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlxbench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env})


def run_suite(root: Path, *sets: str, **env) -> Path:
    done = mlxbench("run", root / "napper.yaml", "--no-calibrate", "--out", root / "results",
                    *(["--set", *sets] if sets else []), cwd=root, **env)
    assert done.returncode == 0, done.stderr
    return max((root / "results" / "napper").iterdir(), key=lambda p: p.stat().st_mtime)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("napper")
    for name in ("napper.py", "napper.yaml"):
        shutil.copy(FIXTURES / name, root / name)
    return root


@pytest.fixture(scope="module")
def first(root):
    return run_suite(root)


def test_its_report_shows_both_declared_figures_with_labels_units_and_savings(root, first):
    table = mlxbench("report", first, "--format", "md", cwd=root).stdout
    header = table.splitlines()[2]
    for heading in ("Nap (s)", "Naps per Second", "Nap Change", "Nap Rate Change"):
        assert heading in header
    long_row = next(line for line in table.splitlines() if line.startswith("| long"))
    assert "+5" in long_row.split("|")[-3] or "+4" in long_row.split("|")[-3]  # ~30 ms against ~20 ms
    html = mlxbench("report", first, "--out", root / "napper.html", cwd=root)
    assert html.returncode == 0, html.stderr
    page = (root / "napper.html").read_text()
    assert "Nap (s)" in page and "Naps per Second" in page and 'data-metric="nap_s"' in page


def test_two_runs_of_the_same_suite_compare_clean(root, first):
    second = run_suite(root)
    done = mlxbench("compare", first, second, cwd=root)
    assert done.returncode == 0, done.stdout
    assert "no significant regression" in done.stdout


def test_every_step_30_percent_slower_is_a_regression_naming_the_timings(root, first):
    slower = run_suite(root, NAPPER_SLOWDOWN="1.3")
    done = mlxbench("compare", first, slower, cwd=root)
    assert done.returncode == 1, done.stdout
    summary = done.stdout.strip().splitlines()[-1]
    assert "nap_s (short)" in summary and "step_time_s (long)" in summary


def test_with_too_few_samples_it_says_it_cannot_judge_at_p_001(root):
    few = run_suite(root, "repeat=3")
    slower = run_suite(root, "repeat=3", NAPPER_SLOWDOWN="1.05")
    done = mlxbench("compare", few, slower, cwd=root)
    assert "cannot judge at p < 0.01 with 3 + 3 samples" in done.stdout
