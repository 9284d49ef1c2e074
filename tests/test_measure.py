"""The measurement loop on real MLX: what is timed, what is summarized, which peak is reported."""

import time

import mlx.core as mx
import pytest

from mlxbench import workloads
from mlxbench.machine.profiler import MemorySampler
from mlxbench.results.metrics import MEMORY_TRUTH_METRICS
from mlxbench.run.measure import finish, measure, record_step
from mlxbench.run.trackers import MlxMemory, StepProgress
from mlxbench.workloads.tracker import Tracker, Trackers
from mlxbench.workloads.base import Workload

BIG = 8 * 1024 * 1024  # float32 elements: 32 MiB
SMALL = 64 * 1024  # 256 KiB
MEMORY_TRUTH = [metric.name for metric in MEMORY_TRUTH_METRICS]  # what the OS counted: tests/test_memory_truth.py


class Counting(Workload):
    """Counts its steps, returns the count with every step, and allocates BIG in warm-up, SMALL after."""

    name = "counting"
    timed_phase = "count"

    def setup(self) -> None:
        self.steps = 0
        self.warmup_peak = 0

    def step(self) -> dict:
        self.steps += 1
        size = BIG if self.steps <= self.p["warmup"] else SMALL
        mx.eval(mx.arange(size, dtype=mx.float32) * 2)
        if self.steps <= self.p["warmup"]:
            self.warmup_peak = max(self.warmup_peak, mx.get_peak_memory())
        return {"step_index": self.steps, "label": "not a number", "flag": True}

    def metrics(self, timed: dict[str, dict]) -> dict:
        return {"steps_timed": timed["step_index"]["n"], "last_index": timed["step_index"]["max"]}


def counting(warmup: int = 2, repeat: int = 3, **kwargs):
    wl = Counting({"warmup": warmup}, seed=0)
    return wl, measure(wl, warmup, repeat, **kwargs)


def test_warmup_steps_are_run_but_not_timed():
    wl, m = counting(warmup=2, repeat=3)
    assert wl.steps == 5
    assert m.samples["step_index"] == [3.0, 4.0, 5.0]


def test_repeat_timed_steps_are_taken_each_with_its_time_and_active_memory():
    _, m = counting(warmup=1, repeat=4)
    assert len(m.samples["step_time_s"]) == 4 and all(t > 0 for t in m.samples["step_time_s"])
    assert len(m.active_after_step) == 4
    assert m.timed["step_time_s"]["n"] == 4


def test_extra_numeric_figures_are_summarized_and_the_rest_dropped():
    _, m = counting(warmup=2, repeat=3)
    assert set(m.samples) == set(m.timed) == {"step_time_s", "step_index"}
    assert m.timed["step_index"]["median"] == 4.0 and m.timed["step_index"]["samples"] == [3.0, 4.0, 5.0]


def test_metrics_derived_by_the_workload_appear_with_the_loop_figures():
    _, m = counting(warmup=2, repeat=3)
    assert m.derived == {"steps_timed": 3, "last_index": 5.0}
    assert m.metrics == {
        **m.timed,
        "peak_memory_bytes": m.peak_memory_bytes, "active_memory_bytes": m.active_memory_bytes,
        "cache_memory_bytes": m.cache_memory_bytes, "peak_rss_bytes": m.peak_rss_bytes,
        "other_processes_cpu_share": m.other_processes_cpu_share,
        **{k: m.metrics[k] for k in MEMORY_TRUTH},
        "steps_s": m.metrics["steps_s"],  # no startup_s: in-process, the process began long before the case
        "steps_timed": 3, "last_index": 5.0,
    }
    assert 0 <= m.other_processes_cpu_share <= 1 and m.peak_rss_bytes > 0
    assert set(m.leak) == {"slope_bytes_per_step", "threshold_bytes_per_step", "leaking"}


def test_peak_memory_is_reset_after_warmup_so_only_the_timed_steps_count():
    wl, m = counting(warmup=2, repeat=3)
    assert wl.warmup_peak >= BIG * 4  # the warm-up did reach the big peak
    assert SMALL * 4 <= m.peak_memory_bytes < m.active_memory_bytes + BIG * 4 // 2


def test_phases_are_marked_on_the_sampler_which_is_stopped_after():
    sampler = MemorySampler(interval_s=0.01)
    _, m = counting(sampler=sampler)
    assert [p["name"] for p in sampler.phases] == ["setup", "warmup", "count"]
    assert m.peak_rss_bytes == sampler.peak_rss_bytes
    assert sampler._thread is None


def test_the_shipped_matmul_workload_is_timed_and_derives_its_rate():
    wl = workloads.get("matmul")({**workloads.get("matmul").defaults(), "n": 64}, seed=0)
    try:
        m = measure(wl, warmup=1, repeat=3)
    finally:
        wl.teardown()
    assert set(m.samples) == {"step_time_s"} and len(m.samples["step_time_s"]) == 3
    assert m.metrics["flops_per_step"] == 2 * 64**3
    assert m.metrics["gflop_per_s"] == pytest.approx(2 * 64**3 / m.timed["step_time_s"]["median"] / 1e9)
    assert m.peak_memory_bytes >= 64 * 64 * 4  # at least the product


def test_steps_timed_elsewhere_give_the_same_summaries_and_metrics():
    wl = Counting({"warmup": 0}, seed=0)
    wl.setup()
    samples: dict = {}
    for seconds in (0.3, 0.1, 0.2):
        record_step(samples, seconds, wl.step())
    timed, derived = finish(wl, samples)
    assert timed["step_time_s"]["median"] == 0.2 and timed["step_index"]["samples"] == [1.0, 2.0, 3.0]
    assert derived == {"steps_timed": 3, "last_index": 3.0}


class _Counter(Tracker):
    produces = ("peak_memory_bytes",)  # MLX's peak, which the loop's MlxMemory tracker produces


def test_a_figure_name_two_trackers_produce_is_refused_when_they_are_composed():
    with pytest.raises(ValueError, match=r"'peak_memory_bytes' is produced by both MlxMemory and _Counter"):
        Trackers([MlxMemory(), _Counter()])


class _Overwriting(Counting):
    """Returns a figure named like the loop's MLX peak, as PyTorch's counter once did."""

    def metrics(self, timed: dict[str, dict]) -> dict:
        return {"peak_memory_bytes": 1}


class _OwnCounter(Counting):
    def trackers(self) -> list:
        return [_Counter()]


@pytest.mark.parametrize("cls, producer", [(_Overwriting, "counting.metrics"), (_OwnCounter, "_Counter")])
def test_a_workload_cannot_replace_a_figure_of_the_loop(cls, producer):
    with pytest.raises(ValueError, match=rf"'peak_memory_bytes' is produced by both \w+ and {producer}"):
        measure(cls({"warmup": 0}, seed=0), 0, 2)


def test_progress_is_a_tracker_told_each_step_warm_up_first():
    seen = []
    _, m = counting(warmup=2, repeat=3, trackers=(StepProgress(seen.append),))
    assert seen == [1, 2, 3, 4, 5] and m.timed["step_time_s"]["n"] == 3


class SlowToSummarize(Counting):
    """Steps of ~20 ms, then derived figures that take 0.5 s: work after the steps, not in them."""

    def step(self) -> dict:
        time.sleep(0.02)
        return super().step()

    def metrics(self, timed: dict[str, dict]) -> dict:
        time.sleep(0.5)
        return super().metrics(timed)


def test_time_in_steps_ends_with_the_last_timed_step_not_with_the_summaries():
    wl = SlowToSummarize({"warmup": 1}, seed=0)
    m = measure(wl, 1, 4)
    in_steps = m.metrics["steps_s"]
    assert sum(m.samples["step_time_s"]) <= in_steps < 0.5
    assert "startup_s" not in m.metrics  # in-process: the process started long before this case
