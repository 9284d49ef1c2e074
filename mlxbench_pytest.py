"""mlxbench's pytest plugin: MLX memory figures for the pytest-benchmark benchmarks that use MLX.

Installed with mlxbench (entry point ``pytest11``), it needs no change to a test: the
``benchmark.extra_info`` of a benchmark that used MLX gets, from the measurement loop's own
trackers (mlxbench.run.trackers),

- ``peak_memory_bytes``: MLX's peak over the test's call (its body and the benchmark's rounds;
  a model built in a fixture is outside it, as is anything a test had built before),
- ``active_memory_bytes``, ``cache_memory_bytes``: MLX memory held when the call ended,
- ``peak_rss_bytes``: the process's peak resident set while the call ran.

A benchmark uses MLX when MLX allocated memory during its call, or when it is marked
``@pytest.mark.mlx_memory`` (which also makes an MLX that is not yet imported count). A figure the
test put in ``extra_info`` itself is left as it is. Judging is ``mlxbench compare OLD.json NEW.json``
on the ``--benchmark-json`` files; the plugin has no gate of its own and uses no private
pytest-benchmark API.

The plugin loads in every pytest session of an environment with mlxbench installed, so it stays
out of the way of a suite that does not use MLX: it imports nothing heavy, chooses no device and
prints nothing until a benchmark has used MLX. Where MLX is imported before a benchmark starts,
it chooses MLX's device first (its CPU where the GPU cannot be trusted, such as a hosted CI
runner's virtual Metal device).
"""

from __future__ import annotations

import dataclasses
import shlex
import sys

import pytest

MARKER = "mlx_memory"
SAMPLE_INTERVAL_S = 0.01


@dataclasses.dataclass
class PluginState:
    """The plugin's state for one session, kept in ``config.stash[STATE]``."""

    measured: int = 0  # benchmarks that got figures
    device_notes: list[str] | None = None  # None until a benchmark made the plugin choose the device


STATE = pytest.StashKey[PluginState]()


class BenchmarkMemory:
    """MLX's counters (the loop's MlxMemory tracker) and the process's peak RSS over one test call."""

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S):
        from mlxbench.machine.profiler import MemorySampler
        from mlxbench.run.trackers import MlxMemory

        self.mlx = MlxMemory()
        self.sampler = MemorySampler(interval_s)

    def __enter__(self) -> "BenchmarkMemory":
        self.sampler.start()
        self.mlx.start()
        return self

    def __exit__(self, *exc) -> None:
        self.mlx.stop()
        self.sampler.stop()

    def figures(self) -> dict:
        """MLX's figures and the peak RSS; {} where MLX allocated nothing (the test did not use MLX)."""
        figures = self.mlx.figures()
        if not figures.get("peak_memory_bytes"):
            return {}
        return {**figures, "peak_rss_bytes": int(self.sampler.peak_rss_bytes)}


def _benchmarks_timed(config) -> bool:
    """Whether pytest-benchmark is loaded and times the benchmarks of this session."""
    loaded = any(config.pluginmanager.hasplugin(name) for name in ("benchmark", "pytest_benchmark.plugin"))
    return loaded and not (config.getoption("benchmark_disable", False) or config.getoption("benchmark_skip", False))


def _measurable(item) -> bool:
    """A benchmark this session times, not opted out of, with MLX imported or the marker set."""
    if "benchmark" not in getattr(item, "fixturenames", ()) or item.config.getoption("no_mlx_memory"):
        return False
    wanted = "mlx.core" in sys.modules or item.get_closest_marker(MARKER) is not None
    return wanted and _benchmarks_timed(item.config)


def pytest_addoption(parser):
    group = parser.getgroup("mlxbench", "mlxbench: MLX memory figures of pytest-benchmark benchmarks")
    group.addoption("--no-mlx-memory", action="store_true",
                    help="do not record MLX memory around benchmarks (no sampler thread)")


def pytest_configure(config):
    config.addinivalue_line("markers", f"{MARKER}: record MLX memory figures in this benchmark's extra_info "
                                       "even where MLX is first imported by the test (mlxbench)")
    config.stash[STATE] = PluginState()


def pytest_runtest_setup(item):
    # Before the test's fixtures run: one that builds a model must not run on a virtual GPU either.
    state = item.config.stash[STATE]
    if state.device_notes is None and _measurable(item):
        from mlxbench.machine.device import choose

        state.device_notes = list(choose())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    if fixture is None or getattr(fixture, "disabled", True) or not _measurable(item):
        yield
        return
    with BenchmarkMemory() as memory:
        yield
    figures = memory.figures()
    if figures and not getattr(fixture, "has_error", False):
        # extra_info is the dict pytest-benchmark serializes at session end; the test's own figures stay.
        for name, value in figures.items():
            fixture.extra_info.setdefault(name, value)
        item.config.stash[STATE].measured += 1


@pytest.hookimpl(optionalhook=True)  # a pytest-benchmark hook: absent without it
def pytest_benchmark_update_machine_info(config, machine_info):
    """Store mlxbench's environment (device, BLAS, versions) in the JSON's machine_info, where MLX was used."""
    state = config.stash.get(STATE, None)
    if state is None or not state.measured:
        return
    from mlxbench.machine import env
    from mlxbench.results.pytest_json import ENV_KEY

    machine_info[ENV_KEY] = env.capture(calibrate=False)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Store the command line, so the report can say how to reproduce the figures (where MLX was used)."""
    state = config.stash.get(STATE, None)
    if state is None or not state.measured:
        return
    from mlxbench.results.pytest_json import COMMAND_KEY

    output_json[COMMAND_KEY] = {"command": shlex.join(["pytest", *map(str, config.invocation_params.args)])}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The device MLX's benchmarks ran on: only where a benchmark used MLX."""
    state = config.stash.get(STATE, None)
    if state is None or not state.measured:
        return
    from mlxbench.machine import blas
    from mlxbench.machine import env

    terminalreporter.section("mlxbench")
    mlx = env.mlx_device()
    terminalreporter.write_line(f"MLX {mlx['version']} on {mlx['device']} ({mlx['backend']} backend), "
                                f"BLAS {blas.load().name}; {state.measured} benchmark(s) with MLX memory figures")
    for note in state.device_notes or []:
        terminalreporter.write_line(note)
