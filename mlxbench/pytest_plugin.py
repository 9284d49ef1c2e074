"""pytest plugin: MLX memory figures for every pytest-benchmark benchmark, and a memory gate.

Installed with mlxbench (entry point ``pytest11``), it needs no change to a test:
each benchmark's ``benchmark.extra_info`` gets

- ``peak_memory_bytes``: MLX's peak over the timed calls (``mx.reset_peak_memory()``
  before each call, the largest ``mx.get_peak_memory()`` after),
- ``active_memory_bytes``: MLX memory still held after the last call,
- ``peak_rss_bytes``: the process's peak resident set while the calls ran.

Only the benchmarked function's calls count: a ``pedantic`` setup that builds a model
between rounds is outside them. ``--benchmark-json`` files carry the figures, and
``--mlx-memory-baseline=OLD.json`` fails the run when one grows by more than
``--mlx-memory-threshold`` percent — pytest-benchmark itself can only gate on time.

Where the GPU MLX would use cannot be trusted (a hosted CI runner's virtual Metal
device), benchmarks run on MLX's CPU device and the environment says so.
"""

from __future__ import annotations

import mlxbench  # noqa: F401  first: loads the optimized BLAS before mlx.core (mlxbench.machine.blas)

import contextlib
import shlex
from pathlib import Path

import pytest

from mlxbench.machine.device import choose as choose_device
from mlxbench.errors import UserError

MEMORY_FIGURES = ("peak_memory_bytes", "active_memory_bytes", "peak_rss_bytes")
DEFAULT_THRESHOLD_PCT = 10.0
SAMPLE_INTERVAL_S = 0.01


class BenchmarkMemory:
    """MLX peak and active memory and peak RSS over the calls a benchmark fixture times."""

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S):
        self.interval_s = interval_s
        self.peak_memory_bytes = 0
        self.active_memory_bytes = 0
        self._sampler = None
        self._stack = contextlib.ExitStack()

    def wrap(self, make_runner):
        """Wrap pytest-benchmark's runner factory so each round is measured outside its timer."""

        def make_measured_runner(*args, **kwargs):
            runner = make_runner(*args, **kwargs)

            def measured_runner(*r_args, **r_kwargs):
                import mlx.core as mx

                if self._sampler is None:
                    from mlxbench.machine.profiler import MemorySampler

                    self._sampler = self._stack.enter_context(MemorySampler(self.interval_s))
                mx.reset_peak_memory()
                try:
                    return runner(*r_args, **r_kwargs)
                finally:
                    self.peak_memory_bytes = max(self.peak_memory_bytes, mx.get_peak_memory())
                    self.active_memory_bytes = mx.get_active_memory()

            return measured_runner

        return make_measured_runner

    def finish(self) -> dict:
        """The figures, or {} when no timed call ran (benchmarks disabled, test failed first)."""
        self._stack.close()
        if self._sampler is None:
            return {}
        return {
            "peak_memory_bytes": int(self.peak_memory_bytes),
            "active_memory_bytes": int(self.active_memory_bytes),
            "peak_rss_bytes": int(self._sampler.peak_rss_bytes),
        }


def memory_regressions(current: dict[str, dict], baseline: dict[str, dict], threshold_pct: float) -> list[str]:
    """One message per memory figure that grew past ``threshold_pct`` percent of its baseline.

    Both arguments map a benchmark's full name to its ``extra_info``; benchmarks or
    figures missing on either side are not compared.
    """
    messages = []
    for fullname, figures in current.items():
        old = baseline.get(fullname)
        if old is None:
            continue
        for key in MEMORY_FIGURES:
            new_value, old_value = figures.get(key), old.get(key)
            if not isinstance(new_value, (int, float)) or not isinstance(old_value, (int, float)):
                continue
            if new_value > old_value * (1 + threshold_pct / 100):
                growth = f"+{(new_value / old_value - 1) * 100:.1f}%" if old_value else "from 0"
                messages.append(
                    f"{fullname}: {key} {_human_bytes(new_value)} exceeds the baseline's {_human_bytes(old_value)} "
                    f"({growth}, threshold {threshold_pct:g}%)"
                )
    return messages


def _human_bytes(value: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def _baseline_figures(path: str) -> dict[str, dict]:
    from mlxbench.results import pytest_json

    try:
        data = pytest_json.load(path)
    except UserError as err:
        raise pytest.UsageError(f"--mlx-memory-baseline: {err}") from None
    return {b.get("fullname", b["name"]): b["extra_info"] for b in data["benchmarks"]}


def pytest_addoption(parser):
    group = parser.getgroup("mlxbench", "mlxbench: MLX memory figures of pytest-benchmark benchmarks")
    group.addoption("--mlx-memory-baseline", metavar="PATH",
                    help="a previous --benchmark-json file: fail when a benchmark's peak_memory_bytes, "
                         "active_memory_bytes or peak_rss_bytes exceeds its figure there by more than "
                         "--mlx-memory-threshold")
    group.addoption("--mlx-memory-threshold", metavar="PCT", type=float, default=DEFAULT_THRESHOLD_PCT,
                    help="allowed growth over the baseline's memory figures, percent (default %(default)s)")
    group.addoption("--no-mlx-memory", action="store_true",
                    help="do not measure memory around benchmarks (no sampler thread)")


def pytest_configure(config):
    threshold = config.getoption("mlx_memory_threshold")
    if threshold < 0:
        raise pytest.UsageError(f"--mlx-memory-threshold: expected a percentage ≥ 0, got {threshold:g}")
    baseline = config.getoption("mlx_memory_baseline")
    config._mlxbench_baseline = _baseline_figures(baseline) if baseline else None
    config._mlxbench_regressions = []
    choose_device()  # before any benchmark: may move MLX to its CPU device


def pytest_report_header(config):
    from mlxbench.machine import blas
    from mlxbench.machine import env

    mlx = env.mlx_device()
    lines = [f"mlxbench: MLX {mlx['version']} on {mlx['device']} ({mlx['backend']} backend), "
             f"BLAS {blas.load().name}"]
    return lines + [f"mlxbench: {note}" for note in choose_device()]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    measurable = (
        fixture is not None
        and not item.config.getoption("no_mlx_memory")
        and not getattr(fixture, "disabled", True)
        and hasattr(fixture, "_make_runner")  # pytest-benchmark's per-round runner factory
    )
    if not measurable:
        yield
        return
    memory = BenchmarkMemory()
    fixture._make_runner = memory.wrap(fixture._make_runner)
    try:
        yield
    finally:
        # extra_info is the dict pytest-benchmark serializes at session end.
        fixture.extra_info.update(memory.finish())


@pytest.hookimpl(optionalhook=True)  # a pytest-benchmark hook: absent without it
def pytest_benchmark_update_machine_info(config, machine_info):
    """Store mlxbench's environment (device, BLAS, versions) in the JSON's machine_info."""
    from mlxbench.machine import env
    from mlxbench.results.pytest_json import ENV_KEY

    captured = env.capture(calibrate=False)
    machine_info[ENV_KEY] = captured


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Store the command line, so the report can say how to reproduce the figures."""
    from mlxbench.results.pytest_json import COMMAND_KEY

    output_json[COMMAND_KEY] = {"command": shlex.join(["pytest", *map(str, config.invocation_params.args)])}


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    baseline = getattr(config, "_mlxbench_baseline", None)
    benchmark_session = getattr(config, "_benchmarksession", None)
    if baseline is None or benchmark_session is None:
        return
    current = {b.fullname: b.extra_info for b in benchmark_session.benchmarks if not b.has_error}
    config._mlxbench_compared = sum(name in baseline for name in current)
    config._mlxbench_regressions = memory_regressions(
        current, baseline, config.getoption("mlx_memory_threshold"))
    if config._mlxbench_regressions and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    baseline_path = config.getoption("mlx_memory_baseline")
    if baseline_path is None:
        return
    regressions = getattr(config, "_mlxbench_regressions", [])
    title = f"MLX memory against {Path(baseline_path).name}"
    if regressions:
        terminalreporter.section(title, red=True)
        terminalreporter.write_line(f"{len(regressions)} memory figure(s) exceed the baseline:", red=True)
        for message in regressions:
            terminalreporter.write_line(f"  {message}", red=True)
    elif not getattr(config, "_mlxbench_compared", 0):
        terminalreporter.section(title, yellow=True)
        terminalreporter.write_line("no benchmark of this run is in the baseline: nothing compared", yellow=True)
    else:
        terminalreporter.section(title, green=True)
        threshold = config.getoption("mlx_memory_threshold")
        terminalreporter.write_line(f"{config._mlxbench_compared} benchmark(s) compared: no memory figure "
                                    f"exceeds the baseline by more than {threshold:g}%")
