"""Cases of several processes under MLX's own launcher: real 2-rank runs over the ring backend on loopback,
one BLAS thread per rank. Collectives checked and their bandwidth curve recorded; data-parallel training
equivalent to one process at the same global batch; a rank that hangs ends its case as a timeout that
names it, leaves no process behind, and the next case runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import mlxbench  # noqa: F401  (the BLAS before mlx.core)
from mlxbench.errors import UserError
from mlxbench.results.store import read_records
from mlxbench.run.launch import who_hung
from mlxbench.suite.schema import load

ROOT = Path(__file__).resolve().parent.parent
STRAGGLER = ROOT / "tests" / "fixtures" / "workloads" / "straggler.yaml"


def run(tmp_path: Path, suite: Path, *args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess, Path]:
    """`mlxbench run` of ``suite``, its temporary files under tmp_path/tmp; the run folder."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "mlxbench", "run", str(suite), "--no-calibrate", "--out",
                           str(tmp_path / "out"), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "TMPDIR": str(tmp_path / "tmp")})
    (run_dir,) = (tmp_path / "out").glob("*/*")
    return done, run_dir


def by_variant(run_dir: Path) -> dict:
    return {r.variant + (f" {r.sweep}" if r.sweep else ""): r for r in read_records(run_dir)}


@pytest.fixture(scope="module")
def collective(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("collective")
    done, run_dir = run(tmp, ROOT / "suites" / "distributed.yaml", "--profile", "quick", "--set", "repeat=2")
    assert done.returncode == 0, done.stdout + done.stderr
    return run_dir


def test_collectives_on_two_ranks_are_checked_and_give_a_bandwidth_curve(collective):
    records = read_records(collective)
    assert sorted(r.sweep["message_bytes"] for r in records) == [1024, 65536, 4194304]
    for r in records:
        assert r.ok and r.distributed["size"] == 2 and r.distributed["backend"] == "ring"
        assert [x["rank"] for x in r.distributed["ranks"]] == [0, 1]
        assert all(x["step_time_s"] > 0 and x["peak_memory_bytes"] > 0 for x in r.distributed["ranks"])
        size = r.sweep["message_bytes"]
        iterations = max(1, min(64, 2**20 // size))
        assert r.metrics["results_checked"] == 3 * iterations * (r.warmup + r.repeat)  # every result, every step
        for op, sent, bus in (("all_sum", size, 1.0), ("all_gather", 2 * size, 0.5), ("send_recv", size, 1.0)):
            algbw = r.metrics[f"{op}_algbw_bytes_per_s"]
            assert algbw == pytest.approx(sent / r.metrics[f"{op}_latency_s"]["median"])
            assert r.metrics[f"{op}_busbw_bytes_per_s"] == pytest.approx(algbw * bus)  # nccl-tests, n = 2


def test_the_report_draws_bandwidth_and_latency_against_message_size(collective, tmp_path):
    done = subprocess.run([sys.executable, "-m", "mlxbench", "report", str(collective), "--out",
                           str(tmp_path / "r.html")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "r.html").read_text()
    assert 'id="distributed"' in page
    assert "Bandwidth against message_bytes" in page and "Latency against message_bytes" in page
    assert "4 MiB" in page  # the size axis in words
    assert "no one-process case at the same settings" in page  # no efficiency made up without a reference


def test_two_ranks_of_batch_4_train_what_one_process_of_batch_8_trains(tmp_path):
    # The first step is what equivalence compares: one timed step, uncompiled (compiling is the slow part here).
    done, run_dir = run(tmp_path, ROOT / "suites" / "data-parallel.yaml", "--profile", "quick",
                        "--set", "warmup=0", "repeat=1", "compile=false", "timeout=600", timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    records = by_variant(run_dir)
    one, two = records["1 process"], records["2 ranks"]
    assert one.distributed is None and two.distributed["size"] == 2
    assert two.equivalence["matches"] is True and two.equivalence["baseline_case_id"] == one.case_id
    for name in ("loss", "grad_norm"):
        assert two.equivalence_values[name] == pytest.approx(one.equivalence_values[name], rel=1e-4)
    assert two.metrics["communication_time_s"]["median"] > 0
    assert two.metrics["tokens_per_s"] == pytest.approx(8 * 32 / two.metrics["step_time_s"]["median"])  # global
    html = tmp_path / "r.html"
    subprocess.run([sys.executable, "-m", "mlxbench", "report", str(run_dir), "--out", str(html)], cwd=ROOT,
                   check=True, capture_output=True, timeout=120)
    assert "Scaling efficiency" in html.read_text() and "No scaling efficiency" not in html.read_text()


def test_a_rank_that_hangs_times_out_named_leaving_nothing_and_the_sweep_goes_on(tmp_path):
    start = time.monotonic()
    done, run_dir = run(tmp_path, STRAGGLER, "--only", "rank 1 hangs", "rank 1 fails", "one process",
                        "--set", "timeout=10")  # the hung case waits it out; 2 ranks start well within it
    assert done.returncode == 1, done.stdout + done.stderr  # cases failed: a verdict, not a crash
    records = by_variant(run_dir)
    hung, failed = records["rank 1 hangs"], records["rank 1 fails"]
    assert hung.status == "timeout" and hung.duration_s < 10
    assert "rank 1 hung in step 1 while rank 0 went on" in hung.error["message"]
    assert failed.status == "error" and failed.error["message"].startswith("rank 1: ValueError: injected")
    assert records["one process"].ok  # the sweep went on
    log = (run_dir / "logs" / f"{hung.case_id}.log").read_text()
    assert "straggler.py" in log and "in step" in log  # every rank's stacks, asked for before the kill
    tmp = str(tmp_path / "tmp")
    left = [p for p in psutil.process_iter(["cmdline"]) if any(tmp in a for a in p.info["cmdline"] or ())]
    assert left == []
    assert list((tmp_path / "tmp").iterdir()) == []  # mlx.launch's own temporary files went with the case
    assert time.monotonic() - start < 120


def test_a_wrong_collective_result_fails_the_case():
    from mlxbench.workloads.collective import Collective

    wl = Collective({**Collective.defaults(), "message_bytes": 64}, 0)
    wl.setup()
    wl.step()
    assert wl.checked == 2 * wl.iterations  # all_sum and all_gather on one process; send_recv needs two
    wl.expected["all_sum"] = wl.expected["all_sum"] + 1
    with pytest.raises(ValueError, match="all_sum on rank 0 of 1: wrong result"):
        wl.step()


def suite(tmp_path: Path, defaults: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nworkload: train\ndefaults: {{model: tiny, {defaults}}}\n")
    return path


@pytest.mark.parametrize("defaults, expected", [
    ("distributed: {processes: 0}", "distributed: processes: expected an integer from 1 to 64, got 0"),
    ("distributed: {ranks: 2}", "distributed: expected the keys processes, backend, hostfile, got unknown key 'ranks'"),
    ("distributed: {processes: 2, backend: tcp}", "backend: expected one of ring, mpi, jaccl, nccl, any, got 'tcp'"),
    ("distributed: {hostfile: nowhere.json}", "hostfile: expected a readable mlx.launch hostfile"),
    ("batch_size: 6, distributed: {processes: 4}", "batch_size: expected a multiple of distributed.processes 4"),
])
def test_a_wrong_distributed_setting_is_one_line_naming_it(tmp_path, defaults, expected):
    with pytest.raises(UserError, match=None) as caught:
        load(suite(tmp_path, defaults))
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_the_rank_that_hung_is_told_from_how_far_each_got():
    def at(phase: str, steps: int = 0) -> dict:
        return {"phase": phase, "steps": steps}

    assert who_hung({0: at("step 3", 3)}, 2) == "rank 1 never connected to the group"
    assert who_hung({0: at("step 3", 3), 1: at("step 2", 2)}, 2).startswith("rank 1 hung in step 2")
    assert "all still in step 2" in who_hung({0: at("step 2", 2), 1: at("step 2", 2)}, 2)
    assert "exchanging" in who_hung({0: at("done", 4), 1: at("gathering", 4)}, 2)
    assert who_hung({}, 1) == "rank 0 never connected to the group"  # no progress file: never got that far


def test_two_ranks_generate_tensor_parallel_each_holding_part_of_the_model(tmp_path):
    path = tmp_path / "gen.yaml"
    path.write_text("name: gen\nworkload: generate\nwarmup: 0\nrepeat: 1\ntimeout: 600\n"
                    "defaults: {model: tiny, prompt_tokens: 12, generation_tokens: 4}\n"
                    "variants:\n  1 process: {}\n  2 ranks: {distributed: {processes: 2}}\n")
    done, run_dir = run(tmp_path, path, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    records = by_variant(run_dir)
    one, two = records["1 process"], records["2 ranks"]
    assert two.distributed["size"] == 2 and two.metrics["decode_tokens_per_s"] > 0
    assert two.metrics["model_size_bytes"] < one.metrics["model_size_bytes"]  # rank 0 holds its part only
