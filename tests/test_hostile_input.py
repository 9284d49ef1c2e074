"""Input that must be refused in one line (exit 2), or handled, never obeyed or answered with a traceback;
and a bug that says it is one (exit 3), so a script can tell a crash from a verdict (exit 1)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sample_runs
from mlxbench import cli
from mlxbench.errors import UserError
from mlxbench.suite import schema as suites

ROOT = Path(__file__).resolve().parent.parent
GRID = ROOT / "tests" / "fixtures" / "grid.yaml"
ONE_LINE = re.compile(r"mlxbench: [^\n]+\n")


def mlxbench(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlxbench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env})


def suite_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text("workload: matmul\n" + text)
    return path


def test_an_alias_bomb_is_refused_in_one_line_before_anything_walks_it(tmp_path):
    lines = ["name: bomb", "a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]  # 9**9 values expanded
    path = suite_file(tmp_path, "\n".join(lines) + "\n")
    started = time.monotonic()
    done = mlxbench("list", str(path), timeout=20)
    assert time.monotonic() - started < 5  # the CLI's own start included; the refusal itself is milliseconds
    assert (done.returncode, done.stdout) == (2, "")
    assert ONE_LINE.fullmatch(done.stderr) and "expected at most 100000 values with aliases expanded" in done.stderr
    started = time.monotonic()
    with pytest.raises(UserError, match="aliases expanded"):
        suites.load(path)
    assert time.monotonic() - started < 0.5


def test_an_alias_that_contains_itself_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"suite.yaml:3: expected YAML, got an alias that contains itself$"):
        suites.load(suite_file(tmp_path, "name: x\nsweep: &s {n: *s}\n"))


@pytest.mark.parametrize("nested", ["[" * 10_000, "".join("  " * i + "a:\n" for i in range(2_000))],
                         ids=["flow", "block"])
def test_yaml_nested_thousands_deep_is_refused_in_one_line(tmp_path, nested):
    path = suite_file(tmp_path, "name: x\ndefaults:\n" + nested)
    started = time.monotonic()
    done = mlxbench("list", str(path), timeout=20)
    assert time.monotonic() - started < 5
    assert (done.returncode, done.stdout) == (2, "")
    assert ONE_LINE.fullmatch(done.stderr) and "expected YAML nested at most 100 deep, got deeper" in done.stderr


@pytest.mark.parametrize("value, problem", [
    (".nan", "expected finite numbers, got nan"),
    (".inf", "expected a number from 0 to 604800, got inf"),
    ("0", "expected a number of seconds > 0, got 0"),
    ("-1", "expected a number from 0 to 604800, got -1"),
])
def test_set_timeout_passes_the_checks_the_suite_file_does(tmp_path, value, problem):
    with pytest.raises(UserError, match=rf"grid.yaml: --set timeout: {re.escape(problem)}$"):
        suites.load(GRID, sets=[f"timeout={value}"])
    with pytest.raises(UserError, match=rf"suite.yaml:3: timeout: {re.escape(problem)}$"):
        suites.load(suite_file(tmp_path, f"name: x\ntimeout: {value}\n"))


def test_nan_is_refused_wherever_a_number_is_read(tmp_path):
    """No value slips past a check by failing every comparison: fields, profiles, parameters, nested ones."""
    with pytest.raises(UserError, match=r"suite.yaml:4: profiles.quick.timeout: expected finite numbers, got nan$"):
        suites.load(suite_file(tmp_path, "name: x\nprofiles:\n  quick: {timeout: .nan}\n"))
    train = tmp_path / "train.yaml"
    train.write_text("name: t\nworkload: train\ndefaults: {model: tiny, learning_rate: .nan}\n")
    with pytest.raises(UserError, match=r"train.yaml:3: defaults.learning_rate: expected finite numbers, got nan$"):
        suites.load(train)
    with pytest.raises(UserError, match=r"--set lora: expected finite numbers, got \{'rank': 8, 'scale': inf\}$"):
        suites.load(train, sets=["learning_rate=0.1", "lora={rank: 8, scale: .inf}"])


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../up", ".hidden"])
def test_a_suite_name_that_would_leave_the_results_folder_is_refused(tmp_path, name):
    with pytest.raises(UserError, match=r"suite.yaml:2: name: expected a name of letters, digits"):
        suites.load(suite_file(tmp_path, f"name: {json.dumps(name)}\n"))


@pytest.mark.parametrize("name", ["smoke", "a.b", "x..y", "v1+cpu", "ü-é"])
def test_every_name_a_suite_may_have_is_one_folder_inside_out(tmp_path, name):
    suite = suites.load(suite_file(tmp_path, f"name: {json.dumps(name)}\n"))
    out = tmp_path / "results"
    assert (out / suite.name).resolve().parent == out.resolve()


def test_an_internal_error_is_one_line_and_exit_3_with_the_traceback_on_request():
    boom = ("import mlxbench.commands.env as m, mlxbench.cli as c, sys\n"
            "def main(args): raise KeyError('no such figure')\n"
            "m.main = main\nsys.exit(c.main(['env']))\n")
    for asked in ("", "1"):
        done = subprocess.run([sys.executable, "-c", boom], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "MLXBENCH_TRACEBACK": asked})
        assert done.returncode == 3
        last = done.stderr.splitlines()[-1]
        assert last == ("mlxbench: internal error: KeyError: 'no such figure' "
                        "(a bug; please report it with the traceback: MLXBENCH_TRACEBACK=1)")
        assert ("Traceback (most recent call last)" in done.stderr) == bool(asked)
        if not asked:
            assert ONE_LINE.fullmatch(done.stderr)


def run_folder(tmp_path: Path, **files: bytes | str) -> Path:
    run = sample_runs.write_run(tmp_path / "run", sample_runs.training_records())
    for name, data in files.items():
        target = run / name.replace("_", ".")
        target.write_bytes(data) if isinstance(data, bytes) else target.write_text(data)
    return run


@pytest.mark.parametrize("files, problem", [
    ({"env_json": b'{"os": "\xff"}'}, "env.json: expected UTF-8 JSON, got bytes that are not UTF-8"),
    ({"suite_yaml": b"name: \xff\n"}, "suite.yaml: expected UTF-8 YAML, got bytes that are not UTF-8"),
    ({"env_json": "[1, 2]"}, "env.json: expected a JSON object, got list"),
    ({"env_json": "{not json"}, "env.json: expected UTF-8 JSON, got Expecting property name"),
    ({"env_json": "[" * 100_000 + "]" * 100_000}, "env.json: expected UTF-8 JSON, got nesting too deep"),
    ({"suite_yaml": "- 1\n"}, "suite.yaml: expected a mapping, got list"),
    ({"records_jsonl": b'[1, 2]\n"x"\n\xff\n'}, "records.jsonl: expected at least one record, got none"),
])
def test_a_run_folder_no_reader_can_use_is_one_line_and_exit_2(tmp_path, capsys, files, problem):
    run = run_folder(tmp_path, **files)
    for command in (["report", str(run), "--format", "md"], ["compare", str(run), str(run)]):
        assert cli.main(command) == 2
        err = capsys.readouterr().err
        assert err.splitlines()[-1].startswith(f"mlxbench: {run / problem.split(':')[0]}: "), err
        assert problem.split(": ", 1)[1] in err.splitlines()[-1]
        assert all(line.startswith("mlxbench: ") for line in err.splitlines())


@pytest.mark.parametrize("figure", ["1e999", "-1e999", "1" + "0" * 400])
def test_a_figure_too_large_for_a_float_is_not_judged_and_breaks_nothing(tmp_path, capsys, figure):
    run = sample_runs.write_run(tmp_path / "run", sample_runs.training_records())
    records = run / "records.jsonl"
    records.write_text(records.read_text().replace('"peak_memory_bytes":1000000000,',
                                                   f'"peak_memory_bytes":{figure},', 1))
    other = sample_runs.write_run(tmp_path / "other", sample_runs.training_records())
    assert cli.main(["report", str(run), "--format", "md"]) == 0
    capsys.readouterr()
    assert cli.main(["compare", str(other), str(run), "--format", "json"]) == 0
    strict = json.loads(capsys.readouterr().out, parse_constant=lambda word: pytest.fail(f"not JSON: {word}"))
    case = next(c for c in strict["cases"] if c["case_id"] == "base-256")
    peak = next(m for m in case["metrics"] if m["metric"] == "peak_memory_bytes")
    assert (peak["new"], peak["verdict"]) == (None, "cannot judge")


def test_a_number_python_will_not_read_is_one_line_and_exit_2(tmp_path, capsys):
    run = sample_runs.write_run(tmp_path / "run", sample_runs.training_records())
    records = run / "records.jsonl"
    records.write_text(records.read_text().replace('"peak_memory_bytes":1000000000,',
                                                   f'"peak_memory_bytes":1{"0" * 5000},', 1))
    assert cli.main(["report", str(run), "--format", "md"]) in (0, 2)  # the line skipped, or the run refused
    assert "Traceback" not in capsys.readouterr().err


def test_variant_names_matplotlib_would_read_as_math_are_drawn_as_written(tmp_path):
    names = {"GC only": r"$\frac$", "GC + M=4": "$x^2$", "micro-batch M=2": "cost $5 or $6"}
    records = sample_runs.training_records()
    for rec in records:
        rec.variant = names.get(rec.variant, rec.variant)
    run = sample_runs.write_run(tmp_path / "run", records)
    out = tmp_path / "report.html"
    assert cli.main(["report", str(run), "--out", str(out)]) == 0
    chart_texts = re.findall(r"<text[^>]*>([^<]*)</text>", out.read_text())
    assert set(names.values()) <= set(chart_texts)  # chart labels as written, not typeset


def test_two_runs_that_share_no_case_are_nothing_to_compare(tmp_path, capsys):
    base = sample_runs.write_run(tmp_path / "base", sample_runs.training_records())
    records = sample_runs.training_records()
    for rec in records:
        rec.case_id = "other-" + rec.case_id
    assert cli.main(["compare", str(base), str(sample_runs.write_run(tmp_path / "new", records))]) == 2
    assert "nothing to compare" in capsys.readouterr().err
