"""`mlxbench report RUN --format llama-bench|json|jsonl|csv|sql` on a real run of the tiny model,
read back with readers written from llama-bench's documented formats (tools/llama-bench/README.md)."""

import csv
import io
import json
import re
import sqlite3
import statistics
import subprocess
import sys
import textwrap

import pytest

from mlxbench.cli import main as cli_main
from mlxbench.report.llama_bench import name_of_test

SUITE = """
name: llama-bench-formats
workload: generate
warmup: 0
repeat: 3
defaults: {model: tiny, prompt_tokens: 8, generation_tokens: 4}
variants:
  tg: {test: tg}
  tg deep: {test: tg, depth: 32}
  pp deep: {test: pp, depth: 32}
  pg, 2 sequences: {batch_size: 2}
"""
# llama-bench's JSON fields (README, "JSON"), with the type each has there; the ones mlxbench fills.
DOCUMENTED = {"build_commit": str, "cpu_info": str, "backends": str, "model_filename": str, "model_type": str,
              "model_size": int, "model_n_params": int, "n_batch": int, "n_ubatch": int, "n_threads": int,
              "type_k": str, "type_v": str, "n_prompt": int, "n_gen": int, "n_depth": int, "test_time": str,
              "avg_ns": int, "stddev_ns": int, "avg_ts": float, "stddev_ts": float, "samples_ns": list,
              "samples_ts": list}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("llama-bench")
    (root / "suite.yaml").write_text(SUITE)
    done = subprocess.run([sys.executable, "-m", "mlxbench", "run", str(root / "suite.yaml"), "--out",
                           str(root / "results"), "--no-calibrate"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return next((root / "results" / "llama-bench-formats").iterdir())


def report(run_dir, fmt: str, capsys) -> str:
    assert cli_main(["report", str(run_dir), "--format", fmt]) == 0
    return capsys.readouterr().out


def read_markdown_table(text: str) -> list[dict[str, str]]:
    """llama-bench's markdown: a header row, a rule of dashes (a trailing ':' right-aligns), then
    one row per test, each cell between '|'; anything after the table's first blank line is not table."""
    lines = text.split("\n\n", 1)[0].strip().splitlines()
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    header, rule, *rows = cells
    assert all(re.fullmatch(r"-+:?", c) for c in rule), rule
    assert all(len(r) == len(header) for r in rows)
    return [dict(zip(header, r)) for r in rows]


def test_llama_bench_markdown_parses_with_its_columns_names_and_rates(run_dir, capsys):
    rows = read_markdown_table(report(run_dir, "llama-bench", capsys))
    assert list(rows[0])[:5] == ["model", "size", "params", "backend", "threads"]
    assert list(rows[0])[-2:] == ["test", "t/s"] and "n_seq" in rows[0]
    assert [r["test"] for r in rows] == ["tg4", "tg4 @ d32", "pp8 @ d32", "pp8+tg4"]
    for r in rows:
        assert re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d", r["t/s"]), r["t/s"]
        assert re.fullmatch(r"\d+\.\d\d (MiB|GiB)", r["size"]) and re.fullmatch(r"\d+\.\d\d [MB]", r["params"])
        assert r["backend"].startswith("MLX ") and r["model"].startswith("tiny ")
    assert {r["n_seq"] for r in rows} == {"1", "2"}


def test_json_has_llama_bench_documented_fields_with_their_types_and_consistent_samples(run_dir, capsys):
    data = json.loads(report(run_dir, "json", capsys))
    assert len(data) == 4
    for entry in data:
        for field, kind in DOCUMENTED.items():
            assert isinstance(entry[field], kind), (field, entry[field])
        assert len(entry["samples_ts"]) == len(entry["samples_ns"]) == 3
        assert entry["avg_ts"] == pytest.approx(statistics.fmean(entry["samples_ts"]))
        assert entry["stddev_ts"] == pytest.approx(statistics.stdev(entry["samples_ts"]))
        tokens = entry["n_seq"] * (entry["n_prompt"] + entry["n_gen"])
        assert entry["samples_ts"][0] == pytest.approx(tokens / (entry["samples_ns"][0] / 1e9), rel=1e-3)
        # mlxbench's own fields follow llama-bench's.
        assert entry["variant"] and entry["case_id"] and entry["test"] == name_of_test(
            entry["n_prompt"], entry["n_gen"], entry["n_depth"])
    assert next(e for e in data if e["variant"] == "tg")["n_prompt"] == 0


def test_jsonl_and_csv_carry_the_same_cases(run_dir, capsys):
    lines = [json.loads(line) for line in report(run_dir, "jsonl", capsys).splitlines()]
    rows = list(csv.DictReader(io.StringIO(report(run_dir, "csv", capsys))))
    assert [x["case_id"] for x in lines] == [r["case_id"] for r in rows]
    header = list(rows[0])
    assert header[:3] == ["build_commit", "build_number", "cpu_info"] and "samples_ts" not in header
    assert [int(r["n_depth"]) for r in rows] == [x["n_depth"] for x in lines]


def test_sql_loads_into_sqlite_and_answers_a_query(run_dir, capsys):
    db = sqlite3.connect(":memory:")
    db.executescript(report(run_dir, "sql", capsys))
    rows = db.execute("SELECT n_depth, avg_ts, n_prompt, variant FROM test WHERE n_gen > 0 AND n_prompt = 0 "
                      "ORDER BY n_depth").fetchall()
    assert [(d, p, v) for d, _, p, v in rows] == [(0, 0, "tg"), (32, 0, "tg deep")]
    assert all(isinstance(ts, float) and ts > 0 for _, ts, _, _ in rows)
    assert db.execute("SELECT COUNT(*) FROM test").fetchone() == (4,)


def test_llama_bench_table_of_a_run_without_generation_tests_is_one_line_exit_2(tmp_path):
    suite = tmp_path / "m.yaml"
    suite.write_text(textwrap.dedent("""
        name: mm
        workload: matmul
        repeat: 2
        defaults: {n: 64}
        variants: {a: {}}
    """))
    subprocess.run([sys.executable, "-m", "mlxbench", "run", str(suite), "--out", str(tmp_path / "r"),
                    "--no-calibrate"], check=True, capture_output=True, timeout=300)
    run = next((tmp_path / "r" / "mm").iterdir())
    out = subprocess.run([sys.executable, "-m", "mlxbench", "report", str(run), "--format", "llama-bench"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "expected cases with llama-bench's test figures" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("n_prompt, n_gen, n_depth, name", [
    (512, 0, 0, "pp512"), (0, 128, 0, "tg128"), (512, 128, 0, "pp512+tg128"), (0, 128, 4096, "tg128 @ d4096"),
])
def test_test_names_are_llama_bench_s(n_prompt, n_gen, n_depth, name):
    assert name_of_test(n_prompt, n_gen, n_depth) == name
