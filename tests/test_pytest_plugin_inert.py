"""Installing mlxbench leaves a test suite that does not use pytest-benchmark's fixture alone:
no MLX, no device choice, no BLAS, no output, the same outcome (real pytest subprocesses)."""

from __future__ import annotations

import json
import os
from importlib import metadata

pytest_plugins = ["pytester"]

WATCHED_ENV = ("MLX", "OPENBLAS", "OMP_")

# A suite that knows nothing of mlxbench; {env} is the environment it must see.
PLAIN_SUITE = '''
import os
import sys

ENV = {env!r}


def test_nothing_heavy_is_imported():
    assert "mlx.core" not in sys.modules
    assert "mlx" not in sys.modules
    assert "mlxbench.machine.blas" not in sys.modules
    assert "mlxbench.machine.device" not in sys.modules


def test_the_environment_is_untouched():
    assert {{k: v for k, v in os.environ.items() if k.startswith({watched!r})}} == ENV


def test_passes():
    assert 1 + 1 == 2


def test_fails():
    assert 1 + 1 == 3
'''

STASH_SUITE = '''
from mlxbench_pytest import STATE


def test_plugin_state_is_on_the_stash(request):
    assert STATE in request.config.stash
    assert not [name for name in vars(request.config) if name.startswith("_mlxbench")]
'''


def plugin_registered() -> bool:
    return any(ep.value == "mlxbench_pytest" for ep in metadata.entry_points(group="pytest11"))


PLUGIN_ON = [] if plugin_registered() else ["-p", "mlxbench_pytest"]
PLUGIN_OFF = ["-p", "no:mlxbench"] if plugin_registered() else []


def run_plain_suite(pytester, *args: str):
    env = {k: v for k, v in os.environ.items() if k.startswith(WATCHED_ENV)}
    pytester.makepyfile(test_plain=PLAIN_SUITE.format(env=env, watched=WATCHED_ENV))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def mlxbench_lines(pytester, result) -> list[str]:
    """Output lines that mention mlxbench, but for pytest's own list of installed plugins and the test's path."""
    lines = [line.replace(str(pytester.path), "") for line in result.outlines + result.errlines]
    return [line for line in lines if "mlxbench" in line.lower() and not line.startswith("plugins:")]


MLX_SUITE = """
import sys


def test_its_own_mlx_keeps_the_wheels_blas():
    import mlx.core as mx

    mx.eval(mx.ones((4, 4)) @ mx.ones((4, 4)))
    assert "mlxbench" not in sys.modules
    if sys.platform.startswith("linux"):
        assert "cmeel.prefix" not in open("/proc/self/maps").read()
"""


def test_a_suite_that_imports_mlx_itself_gets_no_blas_from_the_plugin(pytester):
    pytester.makepyfile(test_mlx=MLX_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *PLUGIN_ON, timeout=120)
    result.assert_outcomes(passed=1)


def test_a_plain_suite_keeps_its_outcome_with_the_plugin(pytester):
    without = run_plain_suite(pytester, *PLUGIN_OFF)
    with_plugin = run_plain_suite(pytester, *PLUGIN_ON)
    without.assert_outcomes(passed=3, failed=1)
    with_plugin.assert_outcomes(passed=3, failed=1)
    assert with_plugin.ret == without.ret == 1


def test_a_plain_suite_prints_nothing_more_with_the_plugin(pytester):
    result = run_plain_suite(pytester, *PLUGIN_ON, "-k", "not fails")
    result.assert_outcomes(passed=3, deselected=1)
    assert mlxbench_lines(pytester, result) == []


def test_the_memory_option_still_parses_in_a_plain_suite(pytester):
    result = run_plain_suite(pytester, *PLUGIN_ON, "-k", "not fails", "--no-mlx-memory")
    result.assert_outcomes(passed=3, deselected=1)
    assert mlxbench_lines(pytester, result) == []


def test_plugin_state_lives_on_config_stash(pytester):
    pytester.makepyfile(test_stash=STASH_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *PLUGIN_ON, timeout=120)
    result.assert_outcomes(passed=1)
