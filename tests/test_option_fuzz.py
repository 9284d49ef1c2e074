"""Every option of every command, fed the values a typo or a script makes: refused in one line, exit 2,
before any work starts, or a meaning the help documents. Run in-process, so it stays fast."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

import sample_runs
from mlxbench import cli, options

ROOT = Path(__file__).resolve().parent.parent
GRID = str(ROOT / "tests" / "fixtures" / "grid.yaml")
HOSTILE = ("nan", "inf", "-1", "0", "9" * 400, "")
ONE_LINE = re.compile(r"mlxbench[^\n]*: [^\n]+\n")
# Values an option documents as meaningful: (command, option, value).
VALID = {
    ("fit", "--warmup", "0"),  # no untimed step
    ("fit", "--runoff-rounds", "0"),  # the best single measurement wins
    ("fit", "--margin", "0"),  # no headroom kept
    ("compare", "--threshold", "0"), ("report", "--threshold", "0"),  # every change beyond noise counts
}
# What each command needs besides the option, chosen so that an accepted option does no slow work.
POSITIONALS = {
    "run": lambda tmp: [GRID, "--dry-run"], "list": lambda tmp: [GRID], "workloads": lambda tmp: [],
    "report": lambda tmp: [str(_run(tmp)), "--format", "md", "--out", str(tmp / "out.md")],
    "compare": lambda tmp: [str(_run(tmp)), str(_run(tmp))], "profile": lambda tmp: ["--", "/nonexistent.py"],
    "env": lambda tmp: ["--no-calibrate"], "estimate": lambda tmp: ["train", "--model", "tiny"],
    "fit": lambda tmp: ["train", "--model", "/nonexistent-model"],
    "history": lambda tmp: ["/nonexistent-suite.yaml", "--out", str(tmp / "h")],
    "bisect": lambda tmp: ["/nonexistent-suite.yaml", "--package", "mlx", "--good", "0.1", "--bad", "0.2",
                           "--out", str(tmp / "b")],
    "db": lambda tmp: ["import", str(tmp / "no-runs-here")],
}
NUMERIC_TYPES = (int, float)


def _run(tmp: Path) -> Path:
    path = tmp / "run"
    return path if path.exists() else sample_runs.write_run(path, sample_runs.training_records())


def _options(command: str) -> list[argparse.Action]:
    parser = cli.build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return [a for a in sub._actions if a.option_strings and a.nargs != 0 and a.dest != "help"]


def _numeric(action: argparse.Action) -> bool:
    """Whether the option reads a number (a name or a path may well be '0' or 'nan')."""
    return getattr(action.type, "reads_number", False)


CASES = [(command, action.option_strings[-1], value)
         for command in cli.COMMANDS for action in _options(command) for value in HOSTILE]


def test_no_option_reads_a_bare_int_or_float():
    """A bare ``type=float`` takes nan and inf; every number goes through mlxbench.options instead."""
    bare = [(c, a.option_strings[-1]) for c in cli.COMMANDS for a in _options(c) if a.type in NUMERIC_TYPES]
    assert bare == []


@pytest.mark.parametrize("command, option, value", CASES, ids=lambda v: str(v)[:12] or "empty")
def test_a_hostile_option_value_is_one_line_and_exit_2_or_a_documented_meaning(tmp_path, monkeypatch, capsys,
                                                                               command, option, value):
    action = next(a for a in _options(command) if option in a.option_strings)
    if (command, option, value) in VALID or (value and not _numeric(action)):
        assert (action.type or str)(value) is not None  # accepted, with the meaning its help gives (a name)
        return
    monkeypatch.chdir(tmp_path)
    argv = [command, *POSITIONALS[command](tmp_path)]
    at = argv.index("--") if "--" in argv else len(argv)
    status = cli.main([*argv[:at], f"{option}={value}", *argv[at:]])
    err = capsys.readouterr().err
    assert status == 2, err
    assert ONE_LINE.fullmatch(err) and "Traceback" not in err, err


@pytest.mark.parametrize("text, expected", [("16GB", 16e9), ("800 mb", 800e6), ("1.5GiB", 1.5 * 2**30),
                                            ("2", 2e9)])
def test_a_budget_is_read_in_the_units_it_names(text, expected):
    assert options.size_bytes(text) == expected
