"""The second fault-injection pass (issue 25): user code that exits or crashes at import, fit's own options,
sweeps too large to build, exports that lose data, and files that are not what their name says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlxbench.commands import fit_output
from mlxbench.errors import UserError
from mlxbench.run import advisor
from mlxbench.suite import schema as suites

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


@pytest.mark.parametrize("spec", [":W", "mod:", ":"])
def test_a_workload_spec_with_a_part_missing_is_refused(tmp_path, spec):
    with pytest.raises(UserError, match="expected 'module:Class' with both named"):
        suites.load(user_workload(tmp_path, "mod", "", spec))


# Item 2: fit blames the budget only when memory was the reason.

def _search_where_every_candidate(status: str, max_batch: int = 4) -> advisor.Search:
    def measure(settings):
        return advisor.Trial(dict(settings), 10**8, status=status, speed=None)

    families = advisor.families_for(advisor.SPACES["train"], {})
    search = advisor.Search(advisor.SPACES["train"], families, 10**9, 0.0, lambda s: 10**8, measure,
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
    search = advisor.Search(advisor.SPACES["train"], [], 10**9, 0.0, lambda s: 10**8, None, max_batch=4)
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
