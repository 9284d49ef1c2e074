"""A new workload is one file: with two metrics, a memory estimate and a search space of its own, ``run``,
``report``, ``compare``, ``estimate`` and ``fit`` all work on it, and no file of mlxbench is edited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKLOAD = '''
import mlx.core as mx

from mlxbench.results.metrics import Metric, rate
from mlxbench.workloads.base import MemoryModel, Param, SearchSpace, Workload


def terms(p):
    """The input is resident; the product is what a step adds."""
    size = p["batch_size"] * p["n"] * 4
    return {"input": size}, {"product": size}


class Scaler(Workload):
    name = "scaler"
    params = (Param("batch_size", int, 1, minimum=1, help="rows"),
              Param("n", int, 65536, minimum=1, help="columns"),
              Param("twice", bool, False, help="scale twice"))
    declares = (rate("items_per_s", "Items/s", of="step_time_s", unit="items/s"),
                Metric("checksum", "Checksum", column=False))
    memory_model = MemoryModel(terms, {"product": 1.0})
    search_space = SearchSpace("items_per_s", "items/s", ({"twice": False}, {"twice": True}), {"twice": False},
                               bounded=False)

    def setup(self):
        self.x = mx.ones((self.p["batch_size"], self.p["n"]))
        mx.eval(self.x)

    def step(self):
        y = self.x * 2.0
        self.y = y * 2.0 if self.p["twice"] else y
        mx.eval(self.y)

    def metrics(self, timed):
        items = self.p["batch_size"] * self.p["n"]
        return {"items_per_s": items / timed["step_time_s"]["median"], "checksum": self.y.sum().item()}
'''
SUITE = """name: scaler
workload: scaler:Scaler
warmup: 1
repeat: 5
variants:
  once: {batch_size: 4}
  twice: {batch_size: 4, twice: true}
"""


def mlxbench(root: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlxbench", *map(str, args)], cwd=root, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scaler")
    (root / "scaler.py").write_text(WORKLOAD)
    (root / "scaler.yaml").write_text(SUITE)
    return root


def run_suite(root: Path) -> Path:
    done = mlxbench(root, "run", "scaler.yaml", "--no-calibrate", "--out", "results")
    assert done.returncode == 0, done.stderr
    return max((root / "results" / "scaler").iterdir(), key=lambda p: p.stat().st_mtime)


def test_run_report_and_compare_read_its_declarations_and_estimate(root):
    first, second = run_suite(root), run_suite(root)
    rows = json.loads(mlxbench(root, "report", first, "--format", "json").stdout)
    assert {r["variant"] for r in rows} == {"once", "twice"}
    assert all(r["items_per_s"] > 0 and r["checksum"] in (4 * 65536 * 2.0, 4 * 65536 * 4.0) for r in rows)
    records = [json.loads(line) for line in (first / "records.jsonl").read_text().splitlines()]
    assert {r["estimate"]["peak_bytes"] for r in records} == {2 * 4 * 65536 * 4}  # its own terms
    page = mlxbench(root, "report", first, "--out", root / "scaler.html")
    assert page.returncode == 0, page.stderr
    assert "Items/s" in (root / "scaler.html").read_text()
    done = mlxbench(root, "compare", first, second)
    assert done.returncode in (0, 1) and "items" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_estimate_and_fit_use_its_memory_model_and_search_space(root):
    done = mlxbench(root, "estimate", "scaler:Scaler", "--set", "batch_size=2", "n=1000000")
    assert done.returncode == 0, done.stderr
    assert "~16 MB" in done.stdout and "product" in done.stdout
    fit = mlxbench(root, "fit", "scaler:Scaler", "--set", "n=1024", "--budget", "2GB", "--max-batch", "4",
                   "--warmup", "0", "--repeat", "2", "--runoff-rounds", "0", "--out", "fits")
    assert fit.returncode == 0, fit.stderr + fit.stdout
    records = [json.loads(line) for run in (root / "fits").glob("*/*") for line in
               (run / "records.jsonl").read_text().splitlines()]
    tried = {(r["params"]["twice"], r["params"]["batch_size"]) for r in records}
    assert {(False, 1), (True, 1)} <= tried and all(r["status"] == "ok" for r in records)
    assert "items/s" in fit.stdout


def test_a_workload_without_a_search_space_says_fit_cannot_search_it(root):
    done = mlxbench(root, "fit", "load")
    assert done.returncode == 2 and "not searchable" in done.stderr and "Traceback" not in done.stderr
