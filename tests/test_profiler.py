"""The memory profiler, on real MLX: timelines, phases, peaks, leaks, and ``mlxbench profile``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest

import mlxbench
from mlxbench.workloads import models
from mlxbench.machine.profiler import (
    SAMPLER_THREAD_NAME,
    MemorySampler,
    downsample_indices,
    leak_check,
    peak_phase,
    process_peak_rss_bytes,
)

MiB = 2**20


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == SAMPLER_THREAD_NAME]


def long_evaluation() -> mx.array:
    """A graph whose single mx.eval takes a good fraction of a second on a CPU."""
    a = mx.random.normal((768, 768))
    x = a
    for _ in range(60):
        x = (x @ a) / 768.0
    return x


def transient_allocation(n_bytes: int) -> None:
    """Allocate and free ``n_bytes`` within a few milliseconds: shorter than a sampling interval."""
    x = mx.zeros((n_bytes // 4,), dtype=mx.float32)
    mx.eval(x)
    del x


def tiny_training_loop(steps: int, after_step=lambda: None) -> None:
    """A real training loop on the tiny preset: forward, backward, Adam update, evaluated."""
    net, config = models.build("tiny", seed=0)
    optimizer = optim.Adam(learning_rate=1e-3)
    tokens = mx.random.randint(0, config["vocab_size"], (2, 17), key=mx.random.key(0))

    def loss_fn(model, inputs, targets):
        return nn.losses.cross_entropy(model(inputs), targets).mean()

    loss_and_grad = nn.value_and_grad(net, loss_fn)
    for _ in range(steps):
        loss, grads = loss_and_grad(net, tokens[:, :-1], tokens[:, 1:])
        optimizer.update(net, grads)
        mx.eval(loss, net.parameters(), optimizer.state)
        after_step()


# --- sampling -----------------------------------------------------------------------------------


def test_samples_keep_arriving_during_one_long_mx_eval():
    x = long_evaluation()
    # At normal priority: under SCHED_IDLE (the default) it samples only when a core is free.
    with MemorySampler(interval_s=0.005, yield_to_compute=False) as sampler:
        time.sleep(0.02)
        begin = time.perf_counter() - sampler.t0
        mx.eval(x)
        end = time.perf_counter() - sampler.t0
    during = [t for t in sampler.samples["t"] if begin < t < end]
    # With the GIL held for the whole evaluation there would be none at all.
    assert len(during) >= max(3, 0.2 * (end - begin) / 0.005)


def test_phases_are_recorded_in_order_with_their_start_times():
    with MemorySampler(interval_s=0.01) as sampler:
        for name in ("warmup", "step", "generate"):
            sampler.phase(name)
            time.sleep(0.01)
    phases = sampler.timeline()["phases"]
    assert [p["name"] for p in phases] == ["warmup", "step", "generate"]
    starts = [p["start"] for p in phases]
    assert starts == sorted(starts) and starts[0] >= 0


def test_sampled_active_memory_never_exceeds_mlx_exact_peak():
    mx.reset_peak_memory()
    with MemorySampler(interval_s=0.001) as sampler:
        for size in (8, 32, 16, 64, 4):
            transient_allocation(size * MiB)
    exact_peak = mx.get_peak_memory()
    timeline = sampler.timeline(max_points=None)
    assert max(timeline["active"]) <= exact_peak
    assert max(timeline["peak"]) == exact_peak  # the closing sample sees the exact peak


def test_peak_phase_is_the_phase_of_the_big_allocation_even_when_it_is_shorter_than_the_interval():
    with mlxbench.profile_memory(interval_s=0.05) as prof:
        prof.phase("warmup")
        transient_allocation(4 * MiB)
        prof.phase("step")
        transient_allocation(64 * MiB)
        prof.phase("generate")
        transient_allocation(16 * MiB)
        time.sleep(0.06)
    assert prof.peak_phase == "step"
    assert peak_phase(prof.sampler.timeline()) == "step"


def test_peak_phase_is_none_when_no_phase_was_marked():
    with MemorySampler(interval_s=0.01) as sampler:
        transient_allocation(MiB)
    assert peak_phase(sampler.timeline()) is None


# --- downsampling -------------------------------------------------------------------------------


def synthetic_samples(n: int) -> dict[str, list]:
    active = [(i * 7919) % 1000 for i in range(n)]
    active[n // 3] = 10_000  # a one-sample spike, easy to lose to plain decimation
    rss = [(i * 104729) % 5000 for i in range(n)]
    rss[2 * n // 3 + 1] = 99_999
    return {"t": [i * 0.01 for i in range(n)], "active": active, "cache": [0] * n,
            "peak": [max(active[: i + 1]) for i in range(n)], "rss": rss}


def test_downsampling_keeps_at_most_max_points():
    keep = downsample_indices(synthetic_samples(10_000), max_points=200)
    assert len(keep) <= 200 and keep == sorted(set(keep))


def test_downsampling_keeps_the_global_maximum_of_active_and_rss_and_the_ends():
    samples = synthetic_samples(10_000)
    keep = downsample_indices(samples, max_points=50)
    assert 10_000 // 3 in keep and 2 * 10_000 // 3 + 1 in keep
    assert {0, 9_999} <= set(keep)


def test_downsampled_timeline_has_the_same_maximum_as_the_full_one():
    with MemorySampler(interval_s=0.001) as sampler:
        for size in range(1, 40):
            transient_allocation(size * 256 * 1024)
            time.sleep(0.003)  # enough samples that downsampling has work to do
    full, small = sampler.timeline(max_points=None), sampler.timeline(max_points=20)
    assert len(small["t"]) <= 20 < len(full["t"])
    for key in ("active", "peak", "rss"):
        assert max(small[key]) == max(full[key])


def test_short_timelines_are_not_downsampled():
    samples = synthetic_samples(100)
    assert downsample_indices(samples, max_points=100) is None


# --- leaks --------------------------------------------------------------------------------------


def test_a_planted_leak_is_flagged():
    kept = []

    def leak():
        kept.append(mx.zeros((64 * 1024,)))  # 256 KiB per step, never released
        mx.eval(kept[-1])

    with mlxbench.profile_memory() as prof:
        tiny_training_loop(steps=8, after_step=lambda: (leak(), prof.step()))
    assert prof.leak_check()["leaking"]
    # Close to the 256 KiB kept per step: arrays of earlier tests freed meanwhile may shave a little off.
    assert prof.leak_check()["slope_bytes_per_step"] >= 0.9 * 256 * 1024


def test_a_steady_training_loop_is_not_flagged():
    with mlxbench.profile_memory() as prof:
        tiny_training_loop(steps=8, after_step=lambda: prof.step())
    result = prof.leak_check()
    assert not result["leaking"]
    assert result["slope_bytes_per_step"] < result["threshold_bytes_per_step"]


def test_a_one_off_jump_after_the_first_step_is_not_read_as_a_leak():
    assert not leak_check([100, 50_000_000, 50_000_000, 50_000_000, 50_000_000, 50_000_000])["leaking"]


@pytest.mark.parametrize("steps", [[], [0], [0, 10 * MiB]])
def test_leak_check_with_fewer_than_three_steps_says_it_cannot_tell(steps):
    result = leak_check(steps)
    assert result["leaking"] is None and result["slope_bytes_per_step"] is None  # not "no leak"
    assert result["reason"].startswith(f"cannot tell: {len(steps)} step")


def test_a_profile_without_marked_steps_says_it_cannot_tell_about_leaks():
    with mlxbench.profile_memory() as prof:
        transient_allocation(MiB)
    assert prof.to_dict()["leak"]["leaking"] is None and "cannot tell" in prof.to_dict()["leak"]["reason"]


# --- profile_memory -----------------------------------------------------------------------------


def test_profile_memory_reports_the_block_exact_peak_and_rss():
    with mlxbench.profile_memory() as prof:
        transient_allocation(32 * MiB)
    assert 32 * MiB <= prof.peak_bytes < 40 * MiB
    assert prof.peak_rss_bytes > 32 * MiB


def test_profile_memory_counts_memory_held_at_entry_in_its_peak():
    held = mx.zeros((8 * MiB // 4,))
    mx.eval(held)
    with mlxbench.profile_memory() as prof:
        pass
    assert prof.peak_bytes >= 8 * MiB


def test_profile_memory_timeline_is_a_dataframe_with_units_and_phases():
    with mlxbench.profile_memory() as prof:
        prof.phase("load")
        transient_allocation(MiB)
    frame = prof.timeline
    assert list(frame.columns[:5]) == ["t_s", "active_bytes", "cache_bytes", "peak_bytes", "rss_bytes"]
    assert frame.columns[-1] == "phase"
    if sys.platform.startswith("linux"):  # what the OS counts, beside MLX's own figures
        assert {"process_bytes", "rss_anon_bytes", "available_bytes", "swap_used_bytes", "pressure"} <= set(frame)
    assert frame["phase"].iloc[-1] == "load"
    assert [p["name"] for p in prof.phases] == ["load"]


def test_sampler_thread_stops_when_the_profiled_block_raises():
    with pytest.raises(RuntimeError, match="inside the block"):
        with mlxbench.profile_memory():
            raise RuntimeError("inside the block")
    assert sampler_threads() == []


def test_sampler_thread_stops_after_a_normal_block():
    with MemorySampler(interval_s=0.01):
        assert len(sampler_threads()) == 1
    assert sampler_threads() == []


# --- mlxbench profile ---------------------------------------------------------------------------

SCRIPT = """
import sys
import mlx.core as mx
from mlxbench.machine.profiler import mark_phase

mark_phase("allocate")
x = mx.zeros((16 * 2**20 // 4,))
mx.eval(x)
print("args:", sys.argv[1:])
if "--fail" in sys.argv:
    raise ValueError("the script failed")
"""


def run_profile(*words: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlxbench", "profile", *words],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "my_script.py"
    path.write_text(SCRIPT)
    return path


def test_profile_command_writes_json_and_html(tmp_path, script):
    out = tmp_path / "out"
    done = run_profile("--out", str(out), "--", "python", str(script), "a", "--b", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "args: ['a', '--b']" in done.stdout
    profile = json.loads((out / "profile.json").read_text())
    assert profile["peak_bytes"] >= 16 * MiB
    assert profile["peak_phase"] == "allocate"
    assert {"t", "active", "cache", "peak", "rss", "phases"} <= set(profile["timeline"])
    assert profile["env"]["env_id"]
    page = (out / "profile.html").read_text()
    assert "<svg" in page and "http://" not in page.split("<svg", 1)[0]


def test_profile_command_accepts_the_script_without_python(tmp_path, script):
    out = tmp_path / "out"
    done = run_profile("--out", str(out), "--", str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (out / "profile.json").exists()


def test_failing_script_exits_1_with_its_traceback_and_profile_written(tmp_path, script):
    out = tmp_path / "out"
    done = run_profile("--out", str(out), "--", "python", str(script), "--fail", cwd=tmp_path)
    assert done.returncode == 1
    assert "ValueError: the script failed" in done.stderr
    assert json.loads((out / "profile.json").read_text())["exit_status"] == 1
    assert (out / "profile.html").exists()


def test_missing_script_is_a_one_line_error_with_exit_2(tmp_path):
    done = run_profile("--", "python", "no_such_script.py", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "mlxbench: no_such_script.py: expected a Python script, got no such file"]


def test_process_peak_rss_covers_every_sampled_rss():
    with MemorySampler(interval_s=0.01) as sampler:
        transient_allocation(16 * MiB)
    # Linux batches per-thread RSS counters (up to 64 pages each), so the two
    # counts can differ by a few hundred KiB; a missed 16 MiB spike would not.
    assert process_peak_rss_bytes() >= sampler.peak_rss_bytes - MiB


def test_cpu_contention_sees_other_processes_burning_the_cpu():
    import subprocess
    import sys

    from mlxbench.machine.profiler import CpuContention

    import psutil

    burn = "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"
    cores = psutil.cpu_count() or 1
    contention = CpuContention().start()
    burners = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(2)]
    for proc in burners:
        proc.wait()
    # Two busy processes take min(2, cores) of the machine's cores: half of that share at least,
    # whatever the core count (a missed burner reads as ~0).
    assert contention.share() >= 0.5 * min(2, cores) / cores


def test_progress_line_warns_when_the_machine_was_busy():
    from mlxbench.results.metrics import LOOP_METRICS, combine
    from mlxbench.results.record import Record
    from mlxbench.run.progress import headline

    record = Record("s", "c", "v", "w", metrics={"step_time_s": 0.5, "other_processes_cpu_share": 0.6})
    assert "BUSY MACHINE" in headline(record, ("step_time_s",), combine(LOOP_METRICS))
    record.metrics["other_processes_cpu_share"] = 0.01
    assert "BUSY MACHINE" not in headline(record, ("step_time_s",), combine(LOOP_METRICS))


def test_profile_runs_a_module_as_python_dash_m_does(tmp_path, script):
    (tmp_path / "my_module.py").write_text(SCRIPT)
    out = tmp_path / "out"
    done = run_profile("--out", str(out), "-m", "my_module", "a", "--b", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "args: ['a', '--b']" in done.stdout  # its own options are its, not mlxbench's
    profile = json.loads((out / "profile.json").read_text())
    assert profile["command"] == "mlxbench profile -m my_module a --b" and profile["peak_phase"] == "allocate"
    assert profile["memory"]["process"]["peak_bytes"] > 0 and "divergence" in profile["memory"]
    failed = run_profile("--out", str(out), "--", "python", "-m", "my_module", "--fail", cwd=tmp_path)
    assert failed.returncode == 1 and "ValueError: the script failed" in failed.stderr


def test_a_module_that_does_not_exist_is_a_one_line_error_with_exit_2(tmp_path):
    done = run_profile("-m", "no_such_module_here", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "mlxbench: profile: -m no_such_module_here: expected an importable module, got no module named "
        "'no_such_module_here'"]


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="no SCHED_IDLE on this OS: the sampler keeps its priority")
def test_the_sampler_thread_yields_to_compute_threads_and_only_it():
    with MemorySampler(interval_s=0.01) as sampler:
        time.sleep(0.05)
        assert os.sched_getscheduler(sampler._thread.native_id) == os.SCHED_IDLE
        assert os.sched_getscheduler(0) != os.SCHED_IDLE  # the thread that computes keeps its own
    with MemorySampler(interval_s=0.01, yield_to_compute=False) as sampler:
        time.sleep(0.05)
        assert os.sched_getscheduler(sampler._thread.native_id) != os.SCHED_IDLE
