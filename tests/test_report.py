"""The report: tables, charts and pages rendered from recorded runs, never re-run."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import sample_runs
from mlxbench.cli import main as cli_main
from mlxbench.report import html as report_html
from mlxbench.report import tables
from mlxbench.results.run import Run, load_run


class Page(HTMLParser):
    """What the tests read from a page: tags with attributes, text, and the savings-table cells."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.rows: list[dict] = []  # savings-table rows: variant, status, cells by metric, changes
        self._row: dict | None = None
        self._cell: tuple[str, str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "tr" and "data-variant" in a:
            self._row = {"variant": a["data-variant"], "status": a["data-status"],
                         "sweep": json.loads(a["data-sweep"]), "values": {},
                         "texts": {}, "changes": {}, "classes": {}, "html": ""}
            self.rows.append(self._row)
        elif tag == "td" and self._row is not None and "data-metric" in a:
            self._row["values"][a["data-metric"]] = float(a["data-value"]) if a["data-value"] else None
            self._row["classes"][a["data-metric"]] = a.get("class", "")
            self._cell = ("texts", a["data-metric"])
        elif tag == "td" and self._row is not None and "data-change" in a:
            self._cell = ("changes", a["data-change"])

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if data.strip():
            self.text.append(data.strip())
        if self._row is not None:
            self._row["html"] += data
            if self._cell is not None:
                kind, key = self._cell
                self._row[kind][key] = (self._row[kind].get(key, "") + data).strip()

    def row(self, variant: str, index: int = 0) -> dict:
        return [r for r in self.rows if r["variant"] == variant][index]


@pytest.fixture
def run_dir(tmp_path):
    return sample_runs.write_run(tmp_path / "results" / "training-memory" / "20261124-100000",
                                 sample_runs.training_records())


@pytest.fixture
def page(run_dir):
    return Page(report_html.render_run(load_run(run_dir)))


def _profile() -> dict:
    t = [i * 0.01 for i in range(50)]
    return {
        "timeline": {"t": t, "active": [1e6 * (1 + i) for i in range(50)], "cache": [0] * 50,
                     "peak": [1e6 * (1 + i) for i in range(50)], "rss": [2e8] * 50,
                     "phases": [{"name": "setup", "start": 0.0}, {"name": "step", "start": 0.2}]},
        "peak_bytes": 50_000_000, "peak_rss_bytes": 200_000_000, "env": {},
        "script": "train.py", "command": "mlxbench profile train.py",
    }


# --- tables: pure functions over records -------------------------------------------------------

def test_one_table_per_sweep_point_with_rows_in_the_suites_variant_order(run_dir):
    run = load_run(run_dir)
    table_list = tables.savings_tables(run)
    assert [t.sweep for t in table_list] == [{"seq_length": 256}, {"seq_length": 512}]
    assert [r.variant for r in table_list[0].rows] == list(sample_runs.SUITE["variants"])


def test_train_tables_show_memory_time_and_throughput_with_both_savings(run_dir):
    run = load_run(run_dir)
    table = tables.savings_tables(run)[0]
    assert [c.label for c in table.columns] == ["Peak Memory (MB)", "Step Time (s)", "Tokens/s"]
    assert [h for h, _ in table.savings] == ["Memory Savings", "Time Savings"]


def test_savings_are_against_the_baseline_at_the_same_sweep_point_with_the_documented_signs(run_dir):
    run = load_run(run_dir)
    table = tables.savings_tables(run)[0]
    gc_m4 = next(r for r in table.rows if r.variant == "GC + M=4")
    memory, time_change = gc_m4.changes
    assert memory.text == "-40.0%" and memory.good is True
    assert time_change.text.startswith("+") and time_change.good is False


def test_a_run_without_declarations_shows_the_loops_figures_and_its_other_scalars(tmp_path):
    record = copy.deepcopy(sample_runs.training_records()[0])
    record.metrics["gflops"] = 120.5
    suite = {k: v for k, v in sample_runs.SUITE.items() if k != "metrics"}  # as an older version wrote it
    run = Run(tmp_path, [record], {}, suite)
    columns = [c.metric for c in tables.savings_tables(run)[0].columns]
    assert columns[:2] == ["step_time_s", "peak_memory_bytes"]
    assert "gflops" in columns
    assert "active_memory_bytes" not in columns


def test_a_variant_without_a_record_is_shown_as_not_run():
    records = [r for r in sample_runs.training_records() if r.variant != "GC only"]
    table = tables.savings_tables(Run(Path("run"), records, {}, sample_runs.SUITE))[0]
    assert next(r for r in table.rows if r.variant == "GC only").status == "not run"


def test_pareto_front_keeps_only_configurations_no_other_beats_in_both():
    # (time, memory): the third is slower AND bigger than the first
    assert tables.pareto_front([(1.0, 1000), (1.25, 600), (1.3, 1100)]) == [True, True, False]


def test_pareto_front_respects_higher_is_better():
    assert tables.pareto_front([(50.0, 1000), (40.0, 1200)], x_better="higher") == [True, False]


# --- the HTML page -----------------------------------------------------------------------------

def test_html_table_figures_match_the_records(run_dir, page):
    by_case = {(r.variant, r.sweep["seq_length"]): r for r in sample_runs.training_records()}
    rows_256 = [r for r in page.rows][:4]
    for row in rows_256:
        record = by_case[(row["variant"], 256)]
        assert row["values"]["peak_memory_bytes"] == pytest.approx(record.metrics["peak_memory_bytes"] / 1e6)
        assert row["values"]["step_time_s"] == pytest.approx(record.metrics["step_time_s"]["median"])
        assert row["values"]["tokens_per_s"] == pytest.approx(record.metrics["tokens_per_s"])


def test_html_shows_the_savings_as_in_the_records(page):
    assert page.row("GC + M=4")["changes"]["Memory Savings"] == "-40.0%"
    assert page.row("micro-batch M=2")["changes"]["Memory Savings"] == "-30.0%"
    assert page.row("baseline")["changes"]["Time Savings"] == "—"


def test_a_failed_case_keeps_its_row_with_status_and_reason(page):
    failed = page.row("GC + M=4", 1)
    assert failed["status"] == "oom"
    assert "Insufficient Memory" in failed["html"]


def test_a_failed_case_is_listed_with_its_traceback(page):
    text = " ".join(page.text)
    assert "Failed cases" in text and "RuntimeError: [METAL] Command buffer execution failed" in text


def test_a_wide_timing_is_flagged(page):
    assert "⚠" in page.row("micro-batch M=2", 1)["texts"]["step_time_s"]
    assert "⚠" not in page.row("micro-batch M=2", 0)["texts"]["step_time_s"]


def test_an_equivalence_failure_is_flagged_with_the_figure_that_differs(page):
    assert "≠ not equivalent: loss" in page.row("GC only", 0)["html"]
    assert "not equivalent" not in page.row("GC only", 1)["html"]


def test_a_leak_is_flagged(page):
    assert "leak" in page.row("GC only", 1)["html"]


def test_the_best_figure_of_each_column_is_marked(page):
    assert "best" in page.row("GC + M=4", 0)["classes"]["peak_memory_bytes"]
    assert "best" in page.row("baseline", 0)["classes"]["step_time_s"]
    assert "★" in page.row("baseline", 0)["texts"]["step_time_s"]
    assert "best" not in page.row("baseline", 0)["classes"]["peak_memory_bytes"]


def test_timings_show_their_p10_to_p90_spread(page, run_dir):
    summary = sample_runs.training_records()[0].metrics["step_time_s"]
    assert f"{summary['p10']:.3g}" in page.row("baseline")["texts"]["step_time_s"]


def test_the_page_has_every_chart_inline(page):
    svgs = [a for t, a in page.tags if t == "svg"]
    # bars per sweep point (2), step time and memory against seq_length (2), Pareto (1), timelines (2)
    assert len(svgs) == 7


def test_the_page_shows_the_environment_and_the_reproduce_command(page):
    text = " ".join(page.text)
    assert "Apple M3 Pro" in text and "Metal (gpu)" in text and "0123456789abcdef" in text
    assert "mlxbench run suites/training-memory.yaml" in text


def test_the_reproduce_command_uses_the_recorded_source_and_profile(run_dir):
    run = load_run(run_dir)
    run.suite.update(source="suites/smoke.yaml", profile="quick")
    assert report_html.reproduce_command(run) == "mlxbench run suites/smoke.yaml --profile quick"


def test_the_page_fetches_nothing(run_dir, page):
    html = report_html.render_run(load_run(run_dir))
    assert not [a for t, a in page.tags if t in ("script", "link", "img", "iframe")]
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//", html)
    assert "@import" not in html


def test_a_comparison_section_is_added_with_compare(run_dir, tmp_path):
    slower = copy.deepcopy(sample_runs.training_records())
    slower[0].metrics["peak_memory_bytes"] *= 2
    other = sample_runs.write_run(tmp_path / "new", slower)
    assert cli_main(["report", str(run_dir), "--compare", str(other), "--out", str(tmp_path / "r.html")]) == 0
    page = Page((tmp_path / "r.html").read_text())
    assert ("section", {"class": "card", "id": "comparison"}) in page.tags
    assert "regression" in page.text


def test_profile_page_has_an_inline_svg_timeline_and_a_row_per_phase():
    page = Page(report_html.render_profile(_profile()))
    assert sum(t == "svg" for t, _ in page.tags) == 1
    assert "setup" in page.text and "step" in page.text
    assert "peak MLX memory 50.0 MB" in page.text


def test_profile_page_rebuilds_the_command_from_script_and_arguments():
    profile = {**_profile(), "command": None, "argv": ["--steps", "3"], "exit_status": 0, "peak_phase": "step"}
    page = Page(report_html.render_profile(profile))
    assert "mlxbench profile -- python train.py --steps 3" in page.text
    assert "peak during step" in page.text


# --- the command ---------------------------------------------------------------------------------

def test_report_writes_reports_suite_run_html_by_default_and_prints_the_path(run_dir, tmp_path, monkeypatch,
                                                                             capsys):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["report", str(run_dir)]) == 0
    out = Path("reports/training-memory-20261124-100000.html")
    assert capsys.readouterr().out.strip() == str(out) and out.exists()


def test_write_html_renders_the_report_the_runner_asks_for(run_dir, tmp_path, monkeypatch):
    from mlxbench.commands.report import write_html

    monkeypatch.chdir(tmp_path)
    path = write_html(run_dir)
    assert path == Path("reports/training-memory-20261124-100000.html") and "Savings" in path.read_text()


def test_markdown_format_is_a_table_per_sweep_point_with_failed_rows(run_dir, capsys):
    assert cli_main(["report", str(run_dir), "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert out.count("| Configuration | Peak Memory (MB) | Step Time (s) | Tokens/s | Memory Savings |") == 2
    assert "| GC + M=4 | **oom**: [METAL] Command buffer execution failed: Insufficient Memory |" in out
    assert "| -40.0% |" in out


def test_csv_format_has_a_row_per_case_with_raw_figures(run_dir, capsys):
    assert cli_main(["report", str(run_dir), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 8
    assert rows[0]["peak_memory_bytes"] == "1000000000" and rows[0]["seq_length"] == "256"
    assert {r["status"] for r in rows} == {"ok", "oom"}


def test_a_directory_without_records_exits_2(tmp_path):
    run = subprocess.run([sys.executable, "-m", "mlxbench", "report", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 2 and "expected at least one record" in run.stderr


def test_a_pytest_benchmark_json_file_is_reported(tmp_path, monkeypatch):
    pytest_json = pytest.importorskip("mlxbench.results.pytest_json")
    data = {"machine_info": {}, "commit_info": {}, "datetime": "2026-11-24T10:00:00", "version": "4.0.0",
            "benchmarks": [{"name": "test_matmul", "fullname": "tests/benchmarks/test_matmul.py::test_matmul",
                            "group": None, "params": None, "param": None, "extra_info": {},
                            "options": {}, "stats": {"min": 0.1, "max": 0.12, "mean": 0.11, "stddev": 0.01,
                                                     "rounds": 5, "median": 0.11, "total": 0.55,
                                                     "data": [0.1, 0.11, 0.11, 0.12, 0.105]}}]}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    try:
        pytest_json.to_run(path)
    except Exception as err:  # the converter's own format checks are its tests' business
        pytest.skip(f"sample not accepted by pytest_json: {err}")
    assert cli_main(["report", str(path), "--out", str(tmp_path / "b.html")]) == 0
    assert "test_matmul" in (tmp_path / "b.html").read_text()


# --- end to end: a real run of the smoke suite, then report and compare ---------------------------

def _mlxbench(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlxbench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """results/smoke/<run id> of `mlxbench run suites/smoke.yaml`, quick profile, two variants."""
    suite = Path(__file__).resolve().parent.parent / "suites" / "smoke.yaml"
    if not suite.exists():
        pytest.skip("suites/smoke.yaml is not there yet")
    root = tmp_path_factory.mktemp("e2e")
    run = _mlxbench("run", suite, "--profile", "quick", "--only", "fp32", "bf16", "--set", "repeat=5",
                    "warmup=1", "--no-calibrate", "--out", root / "results", cwd=root)
    assert run.returncode == 0, run.stderr
    (run_dir,) = (root / "results" / "smoke").iterdir()
    return run_dir


def test_a_real_run_is_reported_with_the_figures_it_recorded(smoke_run, tmp_path):
    result = _mlxbench("report", smoke_run, "--out", tmp_path / "smoke.html", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = Page((tmp_path / "smoke.html").read_text())
    records = {(r.variant, r.sweep["n"]): r for r in load_run(smoke_run).records}
    assert len(page.rows) == len(records) == 4
    for row in page.rows:
        record = records[(row["variant"], row["sweep"]["n"])]
        assert row["values"]["step_time_s"] == pytest.approx(record.metrics["step_time_s"]["median"])
        assert row["values"]["peak_memory_bytes"] == pytest.approx(record.metrics["peak_memory_bytes"] / 1e6)
        assert row["values"]["gflop_per_s"] == pytest.approx(record.metrics["gflop_per_s"])


def test_compare_of_a_real_run_with_itself_exits_0(smoke_run, tmp_path):
    assert _mlxbench("compare", smoke_run, smoke_run, cwd=tmp_path).returncode == 0


def test_compare_against_a_copy_with_peak_memory_doubled_exits_1_naming_it(smoke_run, tmp_path):
    copy_dir = tmp_path / "doubled"
    shutil.copytree(smoke_run, copy_dir)
    lines = []
    for line in (copy_dir / "records.jsonl").read_text().splitlines():
        record = json.loads(line)
        record["metrics"]["peak_memory_bytes"] *= 2
        lines.append(json.dumps(record))
    (copy_dir / "records.jsonl").write_text("\n".join(lines) + "\n")
    result = _mlxbench("compare", smoke_run, copy_dir, cwd=tmp_path)
    assert result.returncode == 1
    assert "significant regressions: peak_memory_bytes" in result.stdout


def test_environment_rows_show_why_the_device_and_blas_were_chosen():
    from mlxbench.report.tables import env_rows

    env = {"notes": ["no Metal device: measuring on MLX's CPU device"],
           "blas": {"name": "reference BLAS", "notes": ["MLXBENCH_BLAS=bundled: optimized BLAS not loaded"]}}
    notes = [value for label, value in env_rows(env) if label == "Note"]
    assert notes == env["notes"] + env["blas"]["notes"]
