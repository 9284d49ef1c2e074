"""Suites: what a YAML file expands to, and the one-line error for each kind of mistake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlxbench.suite import schema as suites
from mlxbench.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
GRID = FIXTURES / "grid.yaml"


def mlxbench(*args: str) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess; tests/fixtures importable, as a user's own workload module is."""
    env = {**os.environ, "PYTHONPATH": str(FIXTURES)}
    return subprocess.run([sys.executable, "-m", "mlxbench", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cases_are_every_variant_at_every_sweep_point_in_suite_order():
    cases = suites.expand(suites.load(GRID))
    assert [(c.variant, c.sweep["n"]) for c in cases] == [
        ("fp32", 16), ("fp32", 32), ("compiled", 16), ("compiled", 32), ("bf16", 16), ("bf16", 32)]


def test_case_parameters_are_workload_defaults_then_suite_defaults_then_variant_then_sweep_point():
    case = next(c for c in suites.expand(suites.load(GRID)) if c.variant == "bf16" and c.sweep["n"] == 32)
    assert case.params == {"n": 32, "dtype": "bfloat16", "compile": False}


def test_only_the_baseline_variants_cases_are_marked_baseline():
    cases = suites.expand(suites.load(GRID))
    assert {c.variant for c in cases if c.is_baseline} == {"fp32"}


def test_case_id_is_the_same_in_every_load_and_differs_between_cases():
    first = [c.case_id for c in suites.expand(suites.load(GRID))]
    again = [c.case_id for c in suites.expand(suites.load(GRID))]
    assert first == again
    assert len(set(first)) == len(first)


def test_case_id_depends_on_parameters_not_on_repeat_or_warmup():
    base = {c.case_id for c in suites.expand(suites.load(GRID))}
    more_steps = {c.case_id for c in suites.expand(suites.load(GRID, sets=["repeat=9", "warmup=0"]))}
    other_seed = {c.case_id for c in suites.expand(suites.load(GRID, sets=["seed=1"]))}
    assert more_steps == base
    assert not other_seed & base


def test_profile_overrides_fields_and_merges_defaults_key_by_key():
    suite = suites.load(GRID, profile="quick")
    assert (suite.profile, suite.repeat, suite.warmup) == ("quick", 2, 1)
    assert list(suite.variants) == ["fp32", "compiled"]
    assert all(c.params["dtype"] == "float16" for c in suites.expand(suite))


def test_profile_full_runs_the_suite_as_written():
    assert suites.load(GRID, profile="full").repeat == suites.load(GRID).repeat == 3


def test_profile_auto_picks_quick_exactly_when_mlx_runs_on_the_cpu():
    import mlx.core as mx

    on_cpu = mx.default_device().type == mx.cpu
    assert suites.load(GRID, profile="auto").profile == ("quick" if on_cpu else None)


def test_unknown_profile_names_the_choices():
    with pytest.raises(UserError, match=r"--profile: expected one of quick, full, auto, got 'quik' "
                                        r"\(did you mean 'quick'\?\)"):
        suites.load(GRID, profile="quik")


def test_set_overrides_a_field_and_a_workload_parameter_of_every_variant():
    suite = suites.load(GRID, sets=["repeat=7", "dtype=float16"])
    assert suite.repeat == 7
    assert [c.params["dtype"] for c in suites.expand(suite)] == ["float16"] * 4 + ["bfloat16"] * 2


def test_set_of_a_sweep_axis_runs_every_variant_at_that_one_value():
    cases = suites.expand(suites.load(GRID, sets=["n=64"]))
    assert [c.sweep for c in cases] == [{"n": 64}] * 3


def test_set_with_a_wrong_value_is_rejected_like_the_file():
    with pytest.raises(UserError, match=r"grid.yaml: --set repeat: expected an integer from 1 to 1000000, got 0$"):
        suites.load(GRID, sets=["repeat=0"])


def test_set_of_an_unknown_key_suggests_the_closest():
    with pytest.raises(UserError, match=r"--set dtyp: .*got 'dtyp' \(did you mean 'dtype'\?\)"):
        suites.load(GRID, sets=["dtyp=float16"])


def test_only_keeps_the_named_variants():
    suite = suites.load(GRID, only=["bf16"])
    assert {c.variant for c in suites.expand(suite)} == {"bf16"}


def test_only_with_an_unknown_variant_is_rejected():
    with pytest.raises(UserError, match=r"--only: expected a variant .*got 'bf61' \(did you mean 'bf16'\?\)"):
        suites.load(GRID, only=["bf61"])


def test_key_paths_quote_names_with_spaces_and_index_lists():
    assert suites.format_path(("variants", "GC only", "micro_batch_size")) == 'variants."GC only".micro_batch_size'
    assert suites.format_path(("sweep", "seq_length", 1)) == "sweep.seq_length[1]"


MALFORMED = {
    "unknown_key": "unknown_key.yaml:3: repat: unknown suite field (did you mean 'repeat'?)",
    "wrong_type": "wrong_type.yaml:6: variants.\"big one\".n: expected a positive integer, got 'four'",
    "wrong_field_type": "wrong_field_type.yaml:3: warmup: expected an integer from 0 to 1000000, got -1",
    "bad_baseline": "bad_baseline.yaml:3: baseline: expected the name of a variant ('fp32', 'bf16'), "
                    "got 'fp23' (did you mean 'fp32'?)",
    "duplicate_variant": "duplicate_variant.yaml:6: variants.fp32: duplicate variant name (first given at line 4)",
    "empty_sweep": "empty_sweep.yaml:4: sweep.n: expected a non-empty list of values, got []",
    "bad_sweep_value": "bad_sweep_value.yaml:4: sweep.n[1]: expected a positive integer, got 0",
    "unknown_param": "unknown_param.yaml:4: defaults.dtyp: unknown parameter of workload 'matmul' "
                     "(did you mean 'dtype'?)",
    "bad_combination": "bad_combination.yaml:7: variants.\"odd block\".block: expected a divisor of n 8, got 3",
    "unknown_workload": "unknown_workload.yaml:2: workload: expected one of collective, generate, load, matmul, train or "
                        "'module:Class', got 'matmull' (did you mean 'matmul'?)",
    "missing_workload": "missing_workload.yaml: expected a 'workload' field",
    "bad_profile": "bad_profile.yaml:5: profiles.quick.repeats: unknown field a profile can set "
                   "(did you mean 'repeat'?)",
    "missing_model": "missing_model.yaml:6: variants.mine.model: expected a preset (tiny, small, medium, "
                     "llama-3.2-1b-shape, qwen2.5-0.5b-shape) or a local model directory, got "
                     "'/no/such/model/dir' (no config.json there)",
    "not_yaml": "not_yaml.yaml:5: expected YAML, got a syntax error:",
    "not_mapping": "not_mapping.yaml: expected a mapping of suite fields",
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_suite_gives_one_line_naming_file_line_and_key_and_exit_status_2(kind):
    done = mlxbench("run", f"tests/fixtures/malformed/{kind}.yaml", "--dry-run")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(f"mlxbench: tests/fixtures/malformed/{MALFORMED[kind]}")


def test_missing_suite_file_gives_one_line_and_exit_status_2():
    done = mlxbench("list", "tests/fixtures/malformed/no_such_suite.yaml")
    assert done.returncode == 2
    assert done.stderr == ("mlxbench: tests/fixtures/malformed/no_such_suite.yaml: expected a readable "
                           "suite file, got No such file or directory\n")


def test_a_variant_with_the_same_parameters_as_another_is_rejected(tmp_path):
    path = tmp_path / "twins.yaml"
    path.write_text("name: twins\nworkload: matmul\nvariants:\n  a: {}\n  b: {dtype: float32}\n")
    with pytest.raises(UserError, match=r"twins.yaml:5: variants.b: expected parameters that differ from "
                                        r"variant 'a', got the same"):
        suites.load(path)


def test_list_shows_each_suite_and_the_cases_it_expands_to():
    done = mlxbench("list", "tests/fixtures/grid.yaml")
    assert done.returncode == 0, done.stderr
    case_lines = [line for line in done.stdout.splitlines() if " · n=" in line]
    assert len(case_lines) == 6
    assert "6 cases" in done.stdout


def test_smoke_suite_expands_to_three_variants_at_two_sizes():
    cases = suites.expand(suites.load(ROOT / "suites" / "smoke.yaml"))
    assert len(cases) == 6


@pytest.mark.parametrize("field, value, expected", [
    ("repeat", 10**20, "expected an integer from 1 to 1000000"),
    ("warmup", 10**7, "expected an integer from 0 to 1000000"),
    ("rounds", 5000, "expected an integer from 1 to 1000"),
    ("timeout", 1e12, "expected a number from 0 to 604800"),
])
def test_a_suite_field_past_its_bound_is_refused_before_any_case_is_built(tmp_path, field, value, expected):
    suite = tmp_path / "big.yaml"
    suite.write_text(f"name: big\nworkload: matmul\n{field}: {value}\nvariants:\n  a: {{}}\n")
    with pytest.raises(UserError, match=rf"big.yaml:3: {field}: {expected}, got"):
        suites.load(suite)
