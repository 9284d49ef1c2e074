"""mlxbench bisect: the search on synthetic series, and the command on a real repository of 16 commits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from history_repo import make_repo
from mlxbench.history.bisect import bisect, differs
from mlxbench.results import store

ROOT = Path(__file__).resolve().parent.parent


def _series(step_at: int, points: int = 16, effect: float = 0.3, noise: float = 0.02):
    """measure(i): ten noisy per-step samples around 1.0, or 1 + effect from ``step_at`` on."""
    rng = np.random.default_rng(0)
    calls = []

    def measure(i: int) -> dict:
        calls.append(i)
        level = 1.0 + (effect if i >= step_at else 0.0)
        return {"t": {"median": level, "samples": list(level + rng.normal(0, noise, 10))}}
    return measure, calls


@pytest.mark.parametrize("step_at", [1, 5, 8, 15])
def test_the_search_finds_the_step_in_about_log2_n_plus_2_measurements(step_at):
    measure, calls = _series(step_at)
    search = bisect(16, measure, "t")
    assert search.found and search.bad == step_at
    assert search.measurements == len(calls) <= 6  # ceil(log2(15)) + 2


def test_ends_that_do_not_differ_give_cannot_tell_not_a_commit():
    measure, calls = _series(step_at=99)
    search = bisect(16, measure, "t")
    assert not search.found and "cannot tell" in search.note
    assert len(calls) == 3  # both ends, and the bad end once more before saying so


def test_a_change_below_the_minimum_effect_is_no_change_however_significant():
    assert differs([1.0] * 5 + [1.01] * 5, [1.03] * 10, min_effect=0.05) is False
    assert differs([1.0, 1.01, 0.99] * 4, [1.3, 1.31, 1.29] * 4) is True
    assert differs([4e6], [6e6]) is True  # an exact figure: the effect alone
    assert differs([1.0, 1.5, 0.7], [1.2, 0.8, 1.9]) is None  # too few samples to say


def test_a_point_between_the_ends_is_measured_again_then_cannot_tell():
    def measure(i: int) -> dict:  # two steps: the middle differs from both ends
        level = 1.0 if i < 4 else (1.3 if i < 12 else 1.7)
        return {"t": {"samples": [level + d for d in np.linspace(-0.01, 0.01, 10)]}}
    search = bisect(16, measure, "t")
    assert not search.found and "cannot tell" in search.note
    assert search.verdicts == {7: "cannot tell"}


def _bisect(repo: Path, out: Path, metric: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "mlxbench", "bisect", "--repo", str(repo), "--good", "HEAD~15", "--bad", "HEAD",
         "--workload", "userwl:Spin", "--metric", metric, "--warmup", "1", "--repeat", "10", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _last_line(proc: subprocess.Popen) -> str:
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    return output.strip().splitlines()[-1]


def _measurements(out: Path) -> int:
    return sum(len(store.read_records(d)) for d in out.iterdir() if store.is_run_dir(d))


def test_bisect_names_the_commit_that_got_slower_and_the_one_that_got_hungrier(tmp_path):
    shas = make_repo(tmp_path / "repo", slower_at=5, hungrier_at=11)
    # Both at once: the timed figure is a ratio within each step, so the other bisect cannot move it.
    slower = _bisect(tmp_path / "repo", tmp_path / "slower", "work_per_reference")
    hungrier = _bisect(tmp_path / "repo", tmp_path / "hungrier", "peak_memory_bytes")
    assert _last_line(slower).startswith(f"first bad: {shas[5][:12]} (Work / Reference ")
    assert _last_line(hungrier) == f"first bad: {shas[11][:12]} (Peak Memory (MB) 4.00 → 6.00 MB; change 11)"
    assert _measurements(tmp_path / "slower") <= 7 and _measurements(tmp_path / "hungrier") <= 7
    again = _bisect(tmp_path / "repo", tmp_path / "hungrier", "peak_memory_bytes")  # every figure is on disk
    output, _ = again.communicate(timeout=600)
    assert output.strip().splitlines()[-2:] == [
        f"0 case measurements; records under {tmp_path / 'hungrier'}",
        f"first bad: {shas[11][:12]} (Peak Memory (MB) 4.00 → 6.00 MB; change 11)"]


@pytest.mark.parametrize("args, expected", [
    (["--good", "nosuchrev"], "--good: expected a commit, got 'nosuchrev'"),
    (["--workload", "userwl:Nope"], "--workload: expected a Workload subclass 'Nope'"),
    (["--metric", "nosuch"], "--metric: expected one of"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, expected):
    make_repo(tmp_path / "repo", commits=2)
    argv = {"--good": "HEAD~1", "--bad": "HEAD", "--workload": "userwl:Spin", "--metric": "step_time_s"}
    argv.update(dict(zip(args[::2], args[1::2])))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mlxbench", "bisect", "--repo", str(tmp_path / "repo"),
                           "--out", str(tmp_path / "out"), *[x for kv in argv.items() for x in kv]],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_bisect_over_releases_needs_the_package_and_says_so_in_one_line(tmp_path):
    (tmp_path / "tiny.yaml").write_text("name: tiny\nworkload: matmul\nbaseline: fp32\nvariants:\n  fp32: {n: 64}\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mlxbench", "bisect", str(tmp_path / "tiny.yaml"),
                           "--good", "0.29.4", "--bad", "0.32.4"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"mlxbench: {tmp_path / 'tiny.yaml'}: --package: expected the package whose "
                                   "releases are bisected, got nothing")
