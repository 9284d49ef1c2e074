"""The second fault-injection pass (issue 25): user code that exits or crashes at import, fit's own options,
sweeps too large to build, exports that lose data, and files that are not what their name says."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import sample_runs
from mlxbench import cli, workloads
from mlxbench.commands import fit_output
from mlxbench.errors import UserError
from mlxbench.report import llama_bench
from mlxbench.report.text import markdown_escaped
from mlxbench.results import store
from mlxbench.results.record import Record
from mlxbench.results.run import Run
from mlxbench.run import advisor
from mlxbench.suite import schema as suites
from test_supervise import left_behind, marker, start_run  # noqa: F401  (marker: a fixture)

ROOT = Path(__file__).resolve().parent.parent
ONE_LINE = re.compile(r"mlxbench: [^\n]+\n")


def mlxbench(*args: str, timeout: float = 60, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlxbench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def user_workload(tmp_path: Path, module: str, code: str, spec: str | None = None) -> Path:
    (tmp_path / f"{module}.py").write_text(code)
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: mine\nworkload: \"{spec or module + ':W'}\"\n")
    return suite


# Item 1: a workload module's import is the user's code: its exit or crash is reported as that.

def test_a_workload_module_that_exits_at_import_is_exit_2_not_a_green_run_of_nothing(tmp_path):
    suite = user_workload(tmp_path, "exits_at_import", "import sys\n\nsys.exit(0)\n")
    done = mlxbench("run", str(suite), "--out", str(tmp_path / "results"))
    assert (done.returncode, done.stdout) == (2, "")
    assert ONE_LINE.fullmatch(done.stderr), done.stderr
    assert f"{tmp_path / 'exits_at_import.py'}:3: exited with status 0 at import" in done.stderr


@pytest.mark.parametrize("module, code, where", [
    ("raises_at_import", "x = 1\nraise RuntimeError('boom\\nand a second line')\n",
     "raises_at_import.py:2: RuntimeError: boom"),
    ("bad_syntax", "def f(:\n    pass\n", "bad_syntax.py:1: SyntaxError"),
    ("imports_a_missing_one", "import no_such_module_f25\n", "imports_a_missing_one.py:1: ModuleNotFoundError"),
])
def test_a_workload_module_that_fails_at_import_names_the_users_file_and_line(tmp_path, module, code, where):
    with pytest.raises(UserError) as refused:
        suites.load(user_workload(tmp_path, module, code))
    assert where in str(refused.value) and "\n" not in str(refused.value)
    assert str(refused.value).startswith(f"{tmp_path / 'suite.yaml'}:2: workload: ")


@pytest.mark.parametrize("module, code, said", [
    ("waits_at_import", "import time\ntime.sleep(600)\n", "did not end within 3 s"),
    ("forks_at_import", "import os\nos.fork()\n", "forked a process"),
    ("ends_at_import", "import os\nos._exit(0)\n", "ended the process with status 0"),
    ("crashes_at_import", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "killed by SIGSEGV"),
])
def test_what_an_import_does_that_cannot_be_caught_is_contained_and_refused(tmp_path, monkeypatch, module, code,
                                                                              said):
    from mlxbench.suite import import_probe

    monkeypatch.setattr(import_probe, "TIMEOUT_S", 3.0)
    pid = os.getpid()
    with pytest.raises(UserError) as refused:
        suites.load(user_workload(tmp_path, module, code))
    assert os.getpid() == pid  # not a forked child carrying on as the runner
    assert f"workload: {module}:W: importing it {said}" in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("spec", [":W", "mod:", ":"])
def test_a_workload_spec_with_a_part_missing_is_refused(tmp_path, spec):
    with pytest.raises(UserError, match="expected 'module:Class' with both named"):
        suites.load(user_workload(tmp_path, "mod", "", spec))


# Item 2: fit blames the budget only when memory was the reason.

def _search_where_every_candidate(status: str, max_batch: int = 4) -> advisor.Search:
    def measure(settings):
        return advisor.Trial(dict(settings), 10**8, status=status, speed=None)

    families = advisor.families_for(workloads.get("train").search_space, {})
    search = advisor.Search(workloads.get("train").search_space, families, 10**9, 0.0, lambda s: 10**8, measure,
                            max_batch=max_batch)
    search.run()
    return search


def test_fit_says_every_candidate_failed_when_none_failed_for_memory(tmp_path):
    error = fit_output.no_answer(_search_where_every_candidate("error: KeyError: 'step_time_s'"), tmp_path)
    assert "every measured candidate failed, none for lack of memory" in str(error)
    assert "KeyError: 'step_time_s'" in str(error) and "budget" not in str(error)


def test_fit_blames_the_budget_when_candidates_ran_out_of_memory(tmp_path):
    error = fit_output.no_answer(_search_where_every_candidate("oom: killed at the memory limit"), tmp_path)
    assert "no measured candidate stayed under the budget" in str(error)


def test_fit_says_nothing_was_measured_when_nothing_was(tmp_path):
    search = advisor.Search(workloads.get("train").search_space, [], 10**9, 0.0, lambda s: 10**8, None, max_batch=4)
    search.run()
    error = fit_output.no_answer(search, tmp_path)
    assert "no candidate was measured" in str(error) and "budget" not in str(error)


@pytest.mark.parametrize("option", ["--timeout=nan", "--budget=" + "9" * 400])  # the rest: test_option_fuzz
def test_fit_refuses_its_own_bad_options_before_any_work(option):
    done = mlxbench("fit", "train", "--model", "tiny", option, timeout=30)
    assert (done.returncode, done.stdout) == (2, "")
    assert re.fullmatch(rf"mlxbench fit: argument {option.split('=')[0]}[^\n]+\n", done.stderr), done.stderr


# Item 4: a sweep is counted before any case is built.

def test_a_sweep_of_125000_cases_is_refused_in_milliseconds_with_the_count_and_the_key_to_raise(tmp_path):
    (tmp_path / "three_axes.py").write_text(
        "from mlxbench.workloads.base import Param, Workload\n\n\nclass W(Workload):\n"
        "    params = tuple(Param(k, int, 1) for k in 'abc')\n")
    axes = "".join(f"  {k}: [{', '.join(map(str, range(50)))}]\n" for k in "abc")
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: big\nworkload: 'three_axes:W'\nsweep:\n{axes}")
    started = time.monotonic()
    with pytest.raises(UserError, match=r"suite.yaml:3: sweep: expected at most 10000 cases \(max_cases\), got 125000 "
                                        r"\(1 variant × 50 a × 50 b × 50 c\); raise max_cases"):
        suites.load(suite)
    assert time.monotonic() - started < 1


def test_max_cases_can_be_raised_in_the_suite_or_with_set(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: n\nworkload: matmul\nmax_cases: 10\nsweep:\n  n: [{', '.join(map(str, range(1, 51)))}]\n")
    with pytest.raises(UserError, match="got 50"):
        suites.load(suite)
    assert len(suites.expand(suites.load(suite, sets=["max_cases=50"]))) == 50
    with pytest.raises(UserError, match=r"--set max_cases: expected a positive integer, got nan"):
        suites.load(suite, sets=["max_cases=.nan"])


# Item 5: llama-bench's exports keep every case and every sweep axis, whatever the axis is named.

def _every_axis_run(workload: str, tmp_path: Path):
    """Two cases of ``workload`` sweeping every parameter it has, with llama-bench's test figures."""
    params = workloads.get(workload).params
    def value(p, i):
        if p.choices:
            return p.choices[i % len(p.choices)]
        return {int: 1 + i, float: 0.5 + i, bool: bool(i), str: f"s{i}"}.get(p.type, f"v{i}")
    records = [Record(suite="axes", case_id=f"c{i}", variant=f"v{i} \x00 after NUL | pipe", workload=workload,
                      run_id="r", sweep={p.name: value(p, i) for p in params},
                      params={p.name: value(p, i) for p in params}, status="ok",
                      metrics={"n_prompt": 8, "n_gen": 4, "n_depth": 0, "test_s": {"median": 0.1, "samples": [0.1, 0.2]},
                               "step_time_s": {"median": 0.1, "p10": 0.1, "p90": 0.2, "samples": [0.1, 0.2]}})
               for i in range(2)]
    sections = [dict(s) for s in workloads.get(workload).report_sections]  # as the run folder keeps them
    return Run(tmp_path, records, {}, {"name": "axes", "workload": workload, "sections": sections}), \
        [p.name for p in params]


@pytest.mark.parametrize("workload", workloads.names())
def test_every_export_loads_back_with_every_sweep_axis_of_every_shipped_workload(tmp_path, workload):

    run, axes = _every_axis_run(workload, tmp_path)
    columns, rows = llama_bench.rows(run)
    assert len(columns) == len(set(columns))
    shown = [c for s in run.sections("llama_bench") for c in s.get("columns", ())]
    named = {a: a if a in columns and not any(a == c for c in ("test", *shown, *llama_bench.FIELDS))
             else f"param_{a}" for a in axes}
    db = sqlite3.connect(":memory:")
    db.executescript(llama_bench.to_sql(run))
    loaded = db.execute("SELECT * FROM test").fetchall()
    header = [d[0] for d in db.execute("SELECT * FROM test").description]
    table = list(csv.DictReader(io.StringIO(llama_bench.to_csv(run))))
    data = json.loads(llama_bench.to_json(run))
    assert len(loaded) == len(table) == len(data) == 2
    for i, record in enumerate(run.records):
        db_row = dict(zip(header, loaded[i]))
        assert db_row["variant"] == table[i]["variant"] == data[i]["variant"] == record.variant
        for axis, column in named.items():
            expected = record.sweep[axis]
            assert data[i][column] == expected, (axis, column)
            assert db_row[column] == (int(expected) if isinstance(expected, bool) else expected), (axis, column)
            assert table[i][column] == str(expected), (axis, column)


def test_a_variant_name_with_a_control_character_is_refused_at_the_suite(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text('name: x\nworkload: matmul\nvariants:\n  "a\\0b": {}\n')
    with pytest.raises(UserError, match=r"suite.yaml:4: variants.* expected a variant name without control characters"):
        suites.load(suite)


def test_markdown_escapes_pipes_and_line_breaks_in_every_cell():

    assert markdown_escaped("a|b\nc\r\nd") == "a\\|b<br>c<br>d"


# Item 7: distributed values are bounded and a hostfile is read with bounds.

@pytest.mark.parametrize("processes", ["1000", "100000000000000000000000"])
def test_a_number_of_processes_past_the_maximum_is_refused(tmp_path, processes):
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: x\nworkload: collective\ndefaults:\n  distributed: {{processes: {processes}}}\n")
    with pytest.raises(UserError, match=r"processes: expected an integer from 1 to 64, got "):
        suites.load(suite)


@pytest.mark.parametrize("kind", ["brackets", "fifo", "device", "loop"])
def test_a_hostfile_that_is_no_file_or_too_deep_is_one_line(tmp_path, kind):
    hostfile = tmp_path / "hosts.json"
    if kind == "brackets":
        hostfile.write_text("[" * 100_000)
    elif kind == "fifo":
        os.mkfifo(hostfile)
    elif kind == "device":
        hostfile = Path("/dev/zero")
    else:
        hostfile.symlink_to(hostfile)
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: x\nworkload: collective\ndefaults:\n  distributed: {{processes: 2, hostfile: '{hostfile}'}}\n")
    started = time.monotonic()
    with pytest.raises(UserError, match="hostfile: ") as refused:
        suites.load(suite)
    assert time.monotonic() - started < 2 and "\n" not in str(refused.value)
    assert {"brackets": "(nested too deep)", "fifo": "(a FIFO)", "device": "(a character device)",
            "loop": "(a symlink loop)"}[kind] in str(refused.value)


# Item 10: a records file that is not a file.

@pytest.mark.parametrize("kind, said", [("fifo", "got a FIFO"), ("loop", "got a symlink loop")])
def test_a_records_file_that_is_a_fifo_or_a_symlink_loop_is_said_not_waited_on(tmp_path, capsys, kind, said):

    run = sample_runs.write_run(tmp_path / "run", sample_runs.training_records())
    (run / "records.jsonl").unlink()
    if kind == "fifo":
        os.mkfifo(run / "records.jsonl")
    else:
        (run / "records.jsonl").symlink_to(run / "records.jsonl")
    started = time.monotonic()
    assert cli.main(["compare", str(run), str(run)]) == 2
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert ONE_LINE.fullmatch(err) and said in err, err


def test_estimate_refuses_a_setting_run_refuses(capsys):

    assert cli.main(["estimate", "train", "--model", "tiny", "--set", "lora={bogus: 1}"]) == 2
    assert "--set lora.bogus: expected one of the keys rank" in capsys.readouterr().err
    assert cli.main(["estimate", "train", "--model", "tiny", "--set", "lora={rank: " + "9" * 30 + "}"]) == 2
    err = capsys.readouterr().err
    assert ONE_LINE.fullmatch(err) and "lora.rank: expected at most the model's hidden size" in err


# Item 8: profile's options are checked before the script runs; a fork writes once; a hang is stopped.

def test_profile_writes_once_when_the_script_forks_and_stops_a_script_past_its_timeout(tmp_path, capsys):

    forks = tmp_path / "forks.py"
    forks.write_text("import os\npid = os.fork()\nif pid:\n    os.waitpid(pid, 0)\n")
    assert cli.main(["profile", "--out", str(tmp_path / "a"), "--", "python", str(forks)]) == 0
    assert capsys.readouterr().err.count("wrote ") == 1
    forever = tmp_path / "forever.py"
    forever.write_text("import time\nwhile True:\n    time.sleep(0.01)\n")
    started = time.monotonic()
    assert cli.main(["profile", "--timeout", "0.5", "--out", str(tmp_path / "b"), "--", "python", str(forever)]) == 124
    assert time.monotonic() - started < 30
    assert "stopped the script after --timeout 0.5 s" in capsys.readouterr().err
    assert (tmp_path / "b" / "profile.json").exists()


@pytest.mark.parametrize("option", ["--max-points=3", "--max-points=0", "--interval-s=inf"])
def test_profile_refuses_its_options_before_the_script_runs(tmp_path, capsys, option):

    script = tmp_path / "leaves_a_mark.py"
    script.write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    assert cli.main(["profile", option, "--out", str(tmp_path / "p"), "--", "python", str(script)]) == 2
    assert not (tmp_path / "ran").exists() and not (tmp_path / "p").exists()
    assert f"argument {option.split('=')[0]}" in capsys.readouterr().err


# Item 10: a case folder a runner killed with -9 left behind is removed by the next runner.

def test_a_case_folder_left_by_a_runner_killed_with_sigkill_is_removed_by_the_next_runner(tmp_path, marker):
    runner = start_run(tmp_path, marker, ["spawns then sleeps"])
    orphans = []
    try:
        deadline = time.monotonic() + 60
        while len(left_behind(marker)) < 2:
            assert runner.poll() is None and time.monotonic() < deadline, runner.communicate()
            time.sleep(0.05)
        orphans = psutil.Process(runner.pid).children(recursive=True)
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
    finally:
        runner.kill()
        runner.communicate()
        for proc in orphans:
            with contextlib.suppress(psutil.Error):
                proc.kill()
    (left,) = (tmp_path / "tmp").iterdir()  # the case's folder, its runner gone
    assert left.name.startswith("mlxbench-case-")
    next_runner = subprocess.run([sys.executable, "-m", "mlxbench", "run", "tests/fixtures/spawner.yaml", "--only", "ok",
                                  "--set", f"marker={marker}", "--out", str(tmp_path / "next"), "--no-calibrate"],
                                 cwd=ROOT, capture_output=True, text=True, timeout=120,
                                 env={**os.environ, "TMPDIR": str(tmp_path / "tmp")})
    assert next_runner.returncode == 0, next_runner.stderr
    assert list((tmp_path / "tmp").iterdir()) == []


# Item 9: mlx.core imported before mlxbench is said once, with the fix, where it would cost 50×.

@pytest.mark.parametrize("imports, warned", [("import mlx.core\nimport mlxbench", True),
                                             ("import mlxbench\nimport mlx.core", False)])
def test_profiling_on_the_reference_blas_because_of_the_import_order_says_so_once(tmp_path, imports, warned):
    script = tmp_path / "late.py"
    script.write_text(f"{imports}\n\nfor _ in range(2):\n    with mlxbench.profile_memory():\n        pass\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("Fix: import mlxbench before mlx.core") == (1 if warned else 0), done.stderr


# Item 6: the rank that died first is named from what each rank left.

def test_a_rank_killed_without_a_word_is_named_before_the_peer_that_lost_it(tmp_path):
    from mlxbench.run.launch import assemble, rank_file

    (rank_file(tmp_path, 0, "json")).write_text(json.dumps(
        {"rank": 0, "status": "error", "ended_at": 2.0,
         "error": {"message": "RuntimeError: [ring] connection to a peer was lost", "traceback": ""}}))
    for rank in (0, 1):
        rank_file(tmp_path, rank, "progress").write_text(json.dumps({"phase": "step 2", "steps": 2, "at": 1.0}))
    outcome = assemble(tmp_path, 2, "2026-12-07T00:00:00+00:00", 1.0, None)
    assert outcome["status"] == "error"
    assert outcome["error"]["message"].startswith("rank 1 died without a word (killed by a signal")
    assert "last seen in step 2); then rank 0: RuntimeError: [ring] connection to a peer was lost" \
        in outcome["error"]["message"]


def test_a_rank_that_failed_with_its_own_error_is_still_named_first(tmp_path):
    from mlxbench.run.launch import assemble, rank_file

    for rank, (ended, message) in enumerate([(2.0, "RuntimeError: peer lost"), (1.0, "ValueError: mine")]):
        rank_file(tmp_path, rank, "json").write_text(json.dumps(
            {"rank": rank, "status": "error", "ended_at": ended, "error": {"message": message}}))
        rank_file(tmp_path, rank, "progress").write_text(json.dumps({"phase": "step 1", "steps": 1}))
    assert assemble(tmp_path, 2, "", 1.0, None)["error"]["message"].startswith("rank 1: ValueError: mine")


def test_a_relative_hostfile_is_read_from_the_suites_folder_not_the_current_one(tmp_path, monkeypatch):
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "hosts.json").write_text(json.dumps([{"ssh": "a"}, {"ssh": "b"}]))
    suite = tmp_path / "suites" / "suite.yaml"
    suite.write_text("name: x\nworkload: collective\ndefaults:\n  distributed: {hostfile: hosts.json}\n"
                     "variants:\n  v: {}\n  w: {dtype: float16, distributed: {hostfile: hosts.json}}\n")
    monkeypatch.chdir(tmp_path)
    cases = suites.expand(suites.load(suite))
    assert {c.params["distributed"]["hostfile"] for c in cases} == {str(tmp_path / "suites" / "hosts.json")}


def test_sigkill_of_rank_1_names_rank_1_not_the_rank_that_lost_it(tmp_path):
    import shutil

    shutil.copy(ROOT / "tests" / "fixtures" / "workloads" / "straggler.py", tmp_path / "straggler.py")
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: killed\nworkload: straggler:Straggler\nwarmup: 1\nrepeat: 3\ntimeout: 30\n"
                     "defaults:\n  distributed: {processes: 2, backend: ring}\nvariants:\n  rank 1 killed: {kill_rank: 1}\n")
    done = mlxbench("run", str(suite), "--no-calibrate", "--out", str(tmp_path / "out"), timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    (run,) = (tmp_path / "out").glob("*/*")
    (record,) = store.read_records(run)
    assert record.status == "error"
    assert record.error["message"].startswith("rank 1 died without a word"), record.error["message"]
