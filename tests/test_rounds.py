"""Interleaved rounds (`mlxbench run --rounds N`): round 1 of every case before round 2 of any, each round a
record of its own, the samples pooled into the case's record with each round's value kept, a resumed run
keeping the finished rounds. Real CLI, real MLX (a tiny matmul grid)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import psutil

from killed_runner import kill_after_first_record
from mlxbench.errors import UserError  # noqa: F401  (the package, BLAS first)
from mlxbench.results import store
from mlxbench.results.rounds import interleaved, pool, round_id
from mlxbench.results.run import load_run
from sample_runs import training_records

ROOT = Path(__file__).resolve().parent.parent
GRID = ["tests/fixtures/grid.yaml", "--only", "fp32", "bf16", "--no-calibrate"]


def mlxbench(*args: str, status: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "mlxbench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == status, done.stdout + done.stderr
    return done


def test_rounds_interleave_pool_their_samples_and_keep_each_rounds_value(tmp_path):
    mlxbench("run", *GRID, "--rounds", "2", "--inline", "--out", str(tmp_path))
    (run_dir,) = tmp_path.glob("*/*")
    records = store.read_records(run_dir)
    rounds = [r for r in records if r.round]
    assert [r.round for r in rounds] == [1] * 4 + [2] * 4  # round 1 of every case, then round 2
    assert max(r.started_at for r in rounds[:4]) <= min(r.started_at for r in rounds[4:])  # to the second
    pooled = [r for r in records if r.round is None]
    assert len(pooled) == 4 and all(r.ok for r in pooled)
    for case in pooled:
        mine = [r for r in rounds if r.case_id in case.rounds["case_ids"]]
        assert [r.case_id for r in mine] == [round_id(case.case_id, k) for k in (1, 2)]
        step = case.metrics["step_time_s"]
        assert step["n"] == 2 * case.repeat
        assert sorted(step["samples"]) == sorted(s for r in mine for s in r.metrics["step_time_s"]["samples"])
        assert case.rounds["values"]["step_time_s"] == [r.metrics["step_time_s"]["median"] for r in mine]
    assert [r.case_id for r in load_run(run_dir).records] == [r.case_id for r in pooled]  # readers see cases


def test_rounds_below_one_are_refused_in_one_line(tmp_path):
    done = mlxbench("run", *GRID, "--rounds", "0", "--out", str(tmp_path), status=2)
    assert done.stderr == ("mlxbench run: argument --rounds: expected a number of rounds from 1 to 1000, got '0' "
                           "(see mlxbench run --help)\n")


def test_a_killed_run_resumes_keeping_its_finished_rounds(tmp_path):
    grid = [*GRID[:2], "fp32", GRID[-1]]  # 2 cases × 2 rounds
    path, workers = kill_after_first_record([*grid, "--rounds", "2", "--out", str(tmp_path)], tmp_path, ROOT)
    psutil.wait_procs(workers, timeout=10)
    before = {r.case_id for r in store.read_records(path.parent)}
    assert 1 <= len(before) < 4
    mlxbench("run", *grid, "--resume", str(path.parent))  # the rounds come from the run resumed
    records = store.read_records(path.parent)
    ran = Counter(r.case_id for r in records if r.round)
    assert len(ran) == 4 and set(ran.values()) == {1}  # every round once: the finished ones were kept
    assert len([r for r in records if r.round is None]) == 2


def test_pool_of_a_failed_round_fails_as_that_round_did():
    first, second = training_records()[:2]
    second = replace(second, status="timeout", error={"message": "passed its timeout"}, metrics={})
    pooled = pool("abc", [first, second])
    assert pooled.status == "timeout" and pooled.metrics == {} and pooled.rounds["of"] == 2


def test_interleaved_runs_round_one_of_every_case_first_then_alternates_abba():
    from mlxbench.suite.schema import expand, load

    a, b = expand(load(ROOT / "tests" / "fixtures" / "grid.yaml"))[:2]
    order = [(c.case_id, k) for c, k in interleaved([a, b], 3)]
    assert order == [(round_id(a.case_id, 1), 1), (round_id(b.case_id, 1), 1), (round_id(b.case_id, 2), 2),
                     (round_id(a.case_id, 2), 2), (round_id(a.case_id, 3), 3), (round_id(b.case_id, 3), 3)]
    cases = [a, b]
    assert interleaved(cases, 1) == [(cases[0], 0), (cases[1], 0)]


def test_each_mlx_pytorch_ratio_shows_its_round_to_round_range(tmp_path):
    from mlxbench.report import frameworks
    from mlxbench.results.metrics import Metric
    from mlxbench.results.record import Record
    from mlxbench.results.run import Run

    rate = Metric("decode_tokens_per_s", "Decode (tok/s)", "tok/s", "higher", kind="rate", of="decode_s")

    def case(variant: str, framework: str, per_round: list[float]) -> Record:
        return Record(suite="vs", case_id=variant, variant=variant, workload="generate",
                      params={"framework": framework, "model": "tiny"}, metrics={rate.name: sorted(per_round)[1]},
                      rounds={"of": 3, "values": {rate.name: per_round}})

    from mlxbench.workloads import get

    sections = [dict(s) for s in get("generate").report_sections]  # as the run folder keeps them
    run = Run(tmp_path, [case("MLX", "mlx", [30.0, 33.0, 36.0]), case("PyTorch", "torch", [10.0, 10.0, 12.0])],
              {}, {"sections": sections}, {rate.name: rate})
    [section] = frameworks.sections(run)
    [row] = section["rows"]
    assert row["rates"][0]["ratio"] == "3.30×"  # the pooled figures' ratio
    assert row["rates"][0]["rounds"] == "3.00–3.30× over 3 rounds"  # 30/10, 33/10, 36/12
