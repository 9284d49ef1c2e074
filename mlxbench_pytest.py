"""mlxbench's pytest plugin: MLX memory figures for every pytest-benchmark benchmark, and a memory gate.

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

The plugin loads in every pytest session of an environment with mlxbench installed,
so it stays inert until a test uses the ``benchmark`` fixture: only then does it import
MLX, choose MLX's device (its CPU device where the GPU cannot be trusted, such as a
hosted CI runner's virtual Metal device) and print anything.

pytest-benchmark has no public per-round hook, so the figures come from wrapping its
private ``BenchmarkFixture._make_runner``: only within ``PYTEST_BENCHMARK_TESTED``.
Outside it nothing is patched and the run says that the figures were not measured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
from importlib import metadata
from pathlib import Path

import pytest

MEMORY_FIGURES = ("peak_memory_bytes", "active_memory_bytes", "peak_rss_bytes")
DEFAULT_THRESHOLD_PCT = 10.0
SAMPLE_INTERVAL_S = 0.01
# pytest-benchmark major versions (first included, last excluded) whose private
# _make_runner(function, args, kwargs) -> runner(loops_range, timer) the plugin wraps
# and its tests run against; the same from 3.4 through 5.x.
PYTEST_BENCHMARK_TESTED = (4, 6)


@dataclasses.dataclass
class PluginState:
    """The plugin's state for one session, kept in ``config.stash[STATE]``."""

    baseline: dict[str, dict] | None = None
    figures: dict[str, dict] = dataclasses.field(default_factory=dict)  # fullname -> memory figures
    regressions: list[str] = dataclasses.field(default_factory=list)
    compared: int = 0
    checked: bool = False  # whether this pytest-benchmark was checked for _make_runner
    unmeasured: str | None = None  # why memory figures were not measured
    device_notes: list[str] | None = None  # None until a benchmark made the plugin choose the device


STATE = pytest.StashKey[PluginState]()


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
    from mlxbench.errors import UserError
    from mlxbench.results import pytest_json

    try:
        data = pytest_json.load(path)
    except UserError as err:
        raise pytest.UsageError(f"--mlx-memory-baseline: {err}") from None
    return {b.get("fullname", b["name"]): b["extra_info"] for b in data["benchmarks"]}


def _pytest_benchmark_version() -> str | None:
    try:
        return metadata.version("pytest-benchmark")
    except metadata.PackageNotFoundError:
        return None


def unpatchable_reason(fixture, version: str | None) -> str | None:
    """Why the plugin cannot measure this pytest-benchmark's rounds, or None when it can."""
    low, high = PYTEST_BENCHMARK_TESTED
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        major = None
    if major is None or not low <= major < high:
        tested = f"{low}.x" if high - low == 1 else f"{low}.x to {high - 1}.x"
        return (f"pytest-benchmark {version or '(version unknown)'} is outside the versions mlxbench's plugin "
                f"is tested with ({tested}), whose private BenchmarkFixture._make_runner it wraps")
    if not callable(getattr(fixture, "_make_runner", None)):
        return f"pytest-benchmark {version} has no BenchmarkFixture._make_runner to wrap"
    return None


def _check_once(item, fixture, state: PluginState) -> str | None:
    """``state.unmeasured``, checked at the first benchmark and warned about once."""
    if not state.checked:
        state.checked = True
        state.unmeasured = unpatchable_reason(fixture, _pytest_benchmark_version())
        if state.unmeasured:
            item.warn(pytest.PytestWarning(f"mlxbench: MLX memory figures not measured: {state.unmeasured}"))
    return state.unmeasured


def _benchmarks_timed(config) -> bool:
    """Whether pytest-benchmark is loaded and times the benchmarks of this session."""
    loaded = any(config.pluginmanager.hasplugin(name) for name in ("benchmark", "pytest_benchmark.plugin"))
    return loaded and not (config.getoption("benchmark_disable", False) or config.getoption("benchmark_skip", False))


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
    config.stash[STATE] = PluginState(baseline=_baseline_figures(baseline) if baseline else None)


def pytest_runtest_setup(item):
    # Before the test's fixtures run: one that builds a model must not run on a virtual GPU either.
    state = item.config.stash[STATE]
    uses_benchmark = "benchmark" in getattr(item, "fixturenames", ())
    if state.device_notes is None and uses_benchmark and _benchmarks_timed(item.config):
        from mlxbench.machine.device import choose

        state.device_notes = list(choose())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    state = item.config.stash[STATE]
    measurable = (
        fixture is not None
        and not item.config.getoption("no_mlx_memory")
        and _check_once(item, fixture, state) is None
        and not getattr(fixture, "disabled", True)
    )
    if not measurable:
        yield
        return
    memory = BenchmarkMemory()
    fixture._make_runner = memory.wrap(fixture._make_runner)
    try:
        yield
    finally:
        figures = memory.finish()
        # extra_info is the dict pytest-benchmark serializes at session end.
        fixture.extra_info.update(figures)
        if figures and not getattr(fixture, "has_error", False):
            state.figures[item.nodeid] = figures


@pytest.hookimpl(optionalhook=True)  # a pytest-benchmark hook: absent without it
def pytest_benchmark_update_machine_info(config, machine_info):
    """Store mlxbench's environment (device, BLAS, versions) in the JSON's machine_info."""
    from mlxbench.machine import env
    from mlxbench.results.pytest_json import ENV_KEY

    machine_info[ENV_KEY] = env.capture(calibrate=False)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Store the command line, so the report can say how to reproduce the figures."""
    from mlxbench.results.pytest_json import COMMAND_KEY

    output_json[COMMAND_KEY] = {"command": shlex.join(["pytest", *map(str, config.invocation_params.args)])}


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    state = config.stash.get(STATE, None)
    if state is None or state.baseline is None:
        return
    state.compared = sum(name in state.baseline for name in state.figures)
    state.regressions = memory_regressions(state.figures, state.baseline, config.getoption("mlx_memory_threshold"))
    if state.regressions and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state = config.stash.get(STATE, None)
    if state is None:
        return
    _summarize_session(terminalreporter, state)
    if config.getoption("mlx_memory_baseline") is not None:
        _summarize_baseline(terminalreporter, config, state)


def _summarize_session(terminalreporter, state: PluginState) -> None:
    """The device benchmarks ran on, and why memory went unmeasured: only once a benchmark ran."""
    if state.device_notes is None and state.unmeasured is None:
        return
    terminalreporter.section("mlxbench", yellow=state.unmeasured is not None)
    if state.unmeasured:
        terminalreporter.write_line(f"MLX memory figures not measured: {state.unmeasured}", yellow=True)
    if state.device_notes is not None:
        from mlxbench.machine import blas
        from mlxbench.machine import env

        mlx = env.mlx_device()  # MLX is imported by now: choosing the device did it
        terminalreporter.write_line(f"MLX {mlx['version']} on {mlx['device']} ({mlx['backend']} backend), "
                                    f"BLAS {blas.load().name}")
        for note in state.device_notes:
            terminalreporter.write_line(note)


def _summarize_baseline(terminalreporter, config, state: PluginState) -> None:
    title = f"MLX memory against {Path(config.getoption('mlx_memory_baseline')).name}"
    if state.regressions:
        terminalreporter.section(title, red=True)
        terminalreporter.write_line(f"{len(state.regressions)} memory figure(s) exceed the baseline:", red=True)
        for message in state.regressions:
            terminalreporter.write_line(f"  {message}", red=True)
    elif not state.compared:
        terminalreporter.section(title, yellow=True)
        terminalreporter.write_line("no benchmark of this run is in the baseline: nothing compared", yellow=True)
    else:
        terminalreporter.section(title, green=True)
        threshold = config.getoption("mlx_memory_threshold")
        terminalreporter.write_line(f"{state.compared} benchmark(s) compared: no memory figure "
                                    f"exceeds the baseline by more than {threshold:g}%")
