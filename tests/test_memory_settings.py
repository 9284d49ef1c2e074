"""MLX's memory settings as workload parameters: applied, recorded, put back; mlx-lm's clear threshold."""

from __future__ import annotations

import mlx.core as mx
import pytest

import mlxbench  # noqa: F401  (BLAS before mlx.core)
from mlxbench.workloads import memory_settings
from mlxbench.workloads.train import Train

MiB = 2**20


class Holder:
    def __init__(self, **p):
        self.p = p


def cached(n_bytes: int) -> None:
    """Leave about ``n_bytes`` in MLX's cache: allocate, evaluate, free."""
    x = mx.ones((n_bytes // 4,))
    mx.eval(x)
    del x


def test_limits_are_applied_recorded_and_put_back():
    before = mx.set_cache_limit(0)  # read the current limit …
    mx.set_cache_limit(before)  # … and put it back
    holder = Holder(mlx_cache_limit_mb=7, mlx_memory_limit_mb=4096)
    applied = memory_settings.apply(holder)
    assert applied["mlx_cache_limit_mb"] == 7 and holder.memory_settings is applied
    assert mx.set_cache_limit(7 * 10**6) == 7 * 10**6  # it is in force, in MB of 10⁶ bytes (not MiB)
    memory_settings.restore(holder)
    assert mx.set_cache_limit(before) == before


@pytest.mark.skipif(memory_settings.metal(), reason="the wired limit applies on Metal")
def test_the_wired_limit_is_recorded_as_not_applicable_off_metal():
    applied = memory_settings.apply(Holder(mlx_wired_limit_mb=1024))
    assert applied["mlx_wired_limit_mb"].startswith("not applicable")


def test_clear_cache_threshold_has_mlx_lm_meaning():
    limit = mx.set_cache_limit(256 * MiB)
    try:
        cached(8 * MiB)
        assert not memory_settings.clear_cache({"clear_cache_threshold": 16 * MiB})  # below N: kept
        assert mx.get_cache_memory() >= 8 * MiB
        assert memory_settings.clear_cache({"clear_cache_threshold": 0})  # 0: whenever anything is cached
        assert mx.get_cache_memory() == 0
        cached(8 * MiB)
        assert not memory_settings.clear_cache({"clear_cache_threshold": None})  # null: the workload's habit
        assert memory_settings.clear_cache({"clear_cache_threshold": None}, otherwise=0)
    finally:
        mx.set_cache_limit(limit)
        mx.clear_cache()


def test_train_varies_its_length_per_step_when_asked_and_counts_the_tokens_it_trained_on():
    params = {**Train.defaults(), "model": "tiny", "batch_size": 2, "seq_length": 64, "seq_length_jitter": 48,
              "compile": False}
    workload = Train(params, seed=0)
    workload.setup()
    for _ in range(4):
        workload.step()
    lengths = [t // 2 for t in workload.tokens_per_step]
    assert len(set(lengths)) > 1 and all(16 <= n <= 64 for n in lengths)
    assert Train.check({**params, "seq_length_jitter": 64}) == [
        ("seq_length_jitter", "expected less than seq_length 64, got 64")]
