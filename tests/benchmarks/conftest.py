"""Benchmarks for ``pytest --benchmark-only tests/benchmarks``; skipped in a plain ``make test``.

A benchmark runs only when asked for: ``--benchmark-only``, ``--benchmark-enable``,
or a path inside tests/benchmarks on the command line. The default test run stays
fast, and the skip reason says how to run them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxbench import stats
from mlxbench import workloads

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
    """Benchmark a shipped workload's ``step()``: set up once, warm-up rounds untimed.

    ``benchmark_workload("train", model="tiny", batch_size=2)`` runs the workload with its
    defaults updated by the keyword arguments. ``extra_info`` gets what the runner would
    record: the workload, its parameters and seed, a summary of each figure ``step()``
    returns (ttft_s, loss, …) over the timed rounds, and the workload's derived metrics.
    """

    def run(name: str, *, rounds: int = 5, warmup_rounds: int = 2, seed: int = 0, **overrides):
        cls = workloads.get(name)
        params = {**cls.defaults(), **overrides}
        workload = cls(params, seed)
        workload.setup()
        per_step: list[dict] = []

        def step():
            per_step.append(workload.step() or {})

        try:
            benchmark.pedantic(step, rounds=rounds, warmup_rounds=warmup_rounds)
            # pedantic runs the warm-up rounds first: the rest are the timed ones.
            timed_steps = per_step[warmup_rounds:]
            timed = {key: stats.summarize([s[key] for s in timed_steps]) for key in timed_steps[0]}
            timed["step_time_s"] = stats.summarize(benchmark.stats.stats.data)
            derived = workload.metrics(timed)
        finally:
            workload.teardown()
        timed.pop("step_time_s")  # pytest-benchmark's own stats hold it
        benchmark.extra_info.update(workload=name, params=params, seed=seed, warmup_rounds=warmup_rounds,
                                    **timed, **derived)

    return run
