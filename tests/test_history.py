"""mlxbench history over a user's commits: interleaved rounds, a record per (commit, round), resumable after SIGKILL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from history_repo import make_repo
from mlxbench.results import store

ROOT = Path(__file__).resolve().parent.parent


def _history(repo: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLXBENCH_DB": f"sqlite:///{out.parent / 'results.db'}"}
    return subprocess.Popen(
        [sys.executable, "-m", "mlxbench", "history", "--repo", str(repo), "--range", "HEAD~2..HEAD",
         "--workload", "userwl:Spin", "--rounds", "2", "--warmup", "0", "--repeat", "3", "--out", str(out), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _records(out: Path) -> dict[str, list]:
    if not out.is_dir():
        return {}
    return {d.name: store.read_records(d) for d in sorted(out.iterdir())
            if store.is_run_dir(d) and (d / store.RECORDS).exists()}


def test_a_history_killed_by_sigkill_and_started_again_runs_every_commit_and_round_once(tmp_path):
    shas = make_repo(tmp_path / "repo", commits=3, slower_at=1, hungrier_at=2)
    out = tmp_path / "history"
    first = _history(tmp_path / "repo", out)
    deadline = time.monotonic() + 300
    while sum(map(len, _records(out).values())) < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(first.pid, signal.SIGKILL)  # no cleanup of any kind: the worst a history can meet
    first.communicate()
    done_before = sum(map(len, _records(out).values()))
    assert 2 <= done_before < 6
    second = _history(tmp_path / "repo", out)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    assert f"{done_before} of 6 (target, case, round) already recorded" in output
    records = _records(out)
    assert sorted(records) == [f"{i:03d}-{sha[:12]}" for i, sha in enumerate(shas)]
    for folder, recs in records.items():
        assert sorted(r.case_id.rsplit("-", 1)[1] for r in recs) == ["r1", "r2"], folder  # each round once
        assert store.read_env(out / folder)["history"]["ref"] in shas
    rounds = sorted((r.started_at, r.case_id[-2:]) for recs in records.values() for r in recs)
    assert [r for _, r in rounds] == ["r1"] * 3 + ["r2"] * 3  # round 1 of every commit, then round 2
    lines = output.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("target ")):]
    assert [line.split()[0] for line in table[1:4]] == [sha[:12] for sha in shas]
    assert [line.split()[-1] for line in table[1:4]] == ["4.00", "4.00", "6.00"]  # MLX's peak, MB
    # The end: imported into the database, steps found on the series, the page and each run's report.
    assert f"  Peak Memory (MB): hungrier +50.0% between {shas[1][:12]} and {shas[2][:12]}" in lines
    assert lines[-1] == f"page:    {out / 'history.html'}" and (out / "history.html").stat().st_size > 0
    assert all((out / folder / "report.html").exists() for folder in records)


def test_a_range_that_is_not_two_commits_is_one_line_and_exit_2(tmp_path):
    make_repo(tmp_path / "repo", commits=2)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mlxbench", "history", "--repo", str(tmp_path / "repo"),
                           "--range", "HEAD", "--workload", "userwl:Spin", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == "mlxbench: --range: expected A..B (two commits), got 'HEAD'"


SUITE = """name: tiny
workload: matmul
baseline: fp32
warmup: 1
repeat: 3
variants:
  fp32: {n: 64}
"""


def _fake_environment(cache: Path, pins: dict, broken: bool = False) -> None:
    """A ready environment of ``pins`` that is this one (a real build takes minutes): its python a
    wrapper of this interpreter, its description what this interpreter has; ``broken``: one where
    mlxbench cannot run (as with an mlx-lm newer than its MLX)."""
    from importlib import metadata

    from mlxbench.history import envs

    os.environ["MLXBENCH_ENV_CACHE"] = str(cache)
    try:
        folder = envs.folder_of(pins)
    finally:
        del os.environ["MLXBENCH_ENV_CACHE"]
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.write_text("#!/bin/sh\necho \"AttributeError: module 'mlx.core' has no attribute 'x'\" >&2; exit 1\n"
                      if broken else f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    versions = {"mlx": metadata.version("mlx"), "mlx-lm": metadata.version("mlx-lm")}
    (folder / envs.READY).write_text(json.dumps({"pins": pins, "versions": versions,
                                                 "mlx_core_version": metadata.version("mlx")}))


def test_a_history_over_versions_runs_each_environment_and_one_that_cannot_install_fails_in_one_line(tmp_path):
    from importlib import metadata

    mlx = metadata.version("mlx")
    _fake_environment(tmp_path / "envs", {"mlx": mlx})
    _fake_environment(tmp_path / "envs", {"mlx": "0.0.8"}, broken=True)
    (tmp_path / "tiny.yaml").write_text(SUITE)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLXBENCH_ENV_CACHE": str(tmp_path / "envs"),
           "MLXBENCH_DB": f"sqlite:///{tmp_path / 'results.db'}"}
    done = subprocess.run([sys.executable, "-m", "mlxbench", "history", str(tmp_path / "tiny.yaml"),
                           "--versions", f"mlx=={mlx},0.0.7,0.0.8", "--rounds", "2", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr  # one environment could not be made
    assert "mlxbench: mlx==0.0.7: could not install: " in done.stdout
    assert re.search(r"mlx(\[cpu\])?==0\.0\.7", done.stdout.split("could not install: ")[1].splitlines()[0])
    assert ("mlxbench: mlx==0.0.8 (with mlx-lm==" in done.stdout and "): mlxbench cannot run with it: "
            "AttributeError: module 'mlx.core' has no attribute 'x'; the other targets still run" in done.stdout)
    folder = tmp_path / "out" / f"000-mlx=={mlx}"
    env_json = store.read_env(folder)
    assert env_json["versions"]["mlx"] == mlx and env_json["mlx"]["version"] == mlx  # read in that interpreter
    assert sorted(r.case_id[-2:] for r in store.read_records(folder)) == ["r1", "r2"]
    assert all(r.ok for r in store.read_records(folder))
    assert not (tmp_path / "out" / "001-mlx==0.0.7" / store.RECORDS).exists()


def test_pins_that_are_not_package_equals_version_are_one_line_and_exit_2(tmp_path):
    (tmp_path / "tiny.yaml").write_text(SUITE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mlxbench", "history", str(tmp_path / "tiny.yaml"),
                           "--pins", "mlx>=0.30"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == "mlxbench: --pins: expected PACKAGE==VERSION, got 'mlx>=0.30'"
