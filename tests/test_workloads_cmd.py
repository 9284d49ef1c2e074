"""`mlxbench workloads`: how a suite author finds what a workload takes without reading its source."""

from __future__ import annotations

import sys

import pytest

from mlxbench import workloads
from mlxbench.cli import main as cli_main
from mlxbench.workloads.train import Train


def test_without_a_name_every_shipped_workload_is_listed_with_its_description(capsys):
    assert cli_main(["workloads"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    for name in workloads.names():
        assert listed[name].endswith(workloads.get(name).description)


def test_a_workload_lists_every_parameter_with_its_default_and_what_it_accepts(capsys):
    assert cli_main(["workloads", "train"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for param in Train.params:
        assert any(line.startswith(f"  {param.name} = ") and param.describe() in line for line in lines), param.name
    assert '  micro_batch_size = null    (a positive integer or null)' in lines
    assert '  model = "small"    (a string)' in lines
    assert ("  clear_cache, clear_cache_threshold, compile, distributed, eval_interval, gradient_checkpointing, micro_batch_size, "
            "mlx_cache_limit_mb, mlx_memory_limit_mb, mlx_wired_limit_mb") in lines


def test_a_users_own_workload_is_described_from_module_and_class(capsys, monkeypatch):
    monkeypatch.chdir("tests/fixtures")
    monkeypatch.setattr(sys, "path", [*sys.path])  # the lookup appends the directory; undo it after
    assert cli_main(["workloads", "faults:Faulty"]) == 0
    assert capsys.readouterr().out.startswith("faulty: ")


@pytest.mark.parametrize("name,words", [
    ("trian", "got 'trian' (did you mean 'train'?)"),
    ("no_such_module:Thing", "expected an importable module"),
])
def test_an_unknown_workload_is_one_line_and_exit_status_2(capsys, name, words):
    assert cli_main(["workloads", name]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and words in err
