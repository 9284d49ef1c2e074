"""Benchmarks for ``pytest --benchmark-only tests/benchmarks``; skipped in a plain ``make test``.

A benchmark runs only when asked for: ``--benchmark-only``, ``--benchmark-enable``,
or a path inside tests/benchmarks on the command line. The default test run stays
fast, and the skip reason says how to run them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxbench import workloads
from mlxbench.run import measure as loop
from mlxbench.run.trackers import MlxMemory

HERE = Path(__file__).resolve().parent
HOW_TO_RUN = "benchmark: run with `pytest --benchmark-only tests/benchmarks`"


def _asked_for(config) -> bool:
    if config.getoption("benchmark_only", False) or config.getoption("benchmark_enable", False):
        return True
    start = Path(config.invocation_params.dir)
    for arg in config.invocation_params.args:
        if arg.startswith("-"):
            continue
        target = (start / arg.split("::", 1)[0]).resolve()
        if target == HERE or HERE in target.parents:
            return True
    return False


def pytest_collection_modifyitems(config, items):
    if _asked_for(config):
        return
    skip = pytest.mark.skip(reason=HOW_TO_RUN)
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(skip)


@pytest.fixture
def benchmark_workload(benchmark):
    """Benchmark a shipped workload's ``step()`` through mlxbench's loop, timed by pytest-benchmark.

    ``benchmark_workload("train", model="tiny", batch_size=2)`` runs the workload with its
    defaults updated by the keyword arguments: set up and warmed up untimed as the runner
    does (so the memory figures cover the timed rounds alone), then ``rounds`` timed calls.
    ``extra_info`` gets what the runner would record: the workload, its parameters and seed,
    a summary of each figure ``step()`` returns (ttft_s, loss, …) over the timed rounds,
    the workload's derived metrics, and MLX's memory over the timed rounds (the plugin keeps them).
    """

    def run(name: str, *, rounds: int = 5, warmup_rounds: int = 2, seed: int = 0, **overrides):
        params = {**workloads.get(name).defaults(), **overrides}
        workload = workloads.get(name).implementation(params)(params, seed)
        extras: list[dict | None] = []
        mlx = MlxMemory()  # the loop's own tracker: MLX's figures over the timed rounds alone
        try:
            loop.prepare(workload, warmup_rounds)
            with mlx:
                benchmark.pedantic(lambda: extras.append(workload.step()), rounds=rounds)
            samples: dict[str, list[float]] = {}
            for seconds, extra in zip(benchmark.stats.stats.data, extras, strict=True):
                loop.record_step(samples, seconds, extra)
            timed, derived = loop.finish(workload, samples)
        finally:
            workload.teardown()
        timed.pop("step_time_s")  # pytest-benchmark's own stats hold it
        benchmark.extra_info.update(workload=name, params=params, seed=seed, warmup_rounds=warmup_rounds,
                                    **timed, **derived, **mlx.figures())

    return run
