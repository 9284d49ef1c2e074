"""Memory truth: what the OS counts, read for real (Linux here, macOS on its CI runner), and the
divergence between the process and MLX, on real training cases run by the runner."""

from __future__ import annotations

import os
import subprocess
import textwrap
import sys

import mlx.core as mx
import numpy as np
import pytest

import mlxbench  # noqa: F401  (BLAS before mlx.core)
from mlxbench.machine import memory_truth, os_memory
from mlxbench.machine.os_memory import Reader

MiB = 2**20
LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc files")
MACOS_ONLY = pytest.mark.skipif(sys.platform != "darwin", reason="macOS APIs (libproc, sysctl, Mach): "
                                                                  "run on the macOS CI runner")
PROCESS = ("process_bytes", "process_peak_bytes", "rss_bytes")
SYSTEM = ("total_bytes", "available_bytes", "swap_used_bytes", "pressure")


def touched(n_bytes: int) -> np.ndarray:
    block = np.ones(n_bytes, dtype=np.uint8)  # written, so resident
    return block


# --- the OS layers, read for real ----------------------------------------------------------------


@LINUX_ONLY
def test_linux_reading_has_the_process_and_system_layers():
    reading = Reader().read()
    assert set(PROCESS) | {"rss_anon_bytes", "rss_file_bytes", "process_swap_bytes"} <= set(reading)
    assert reading["process_bytes"] == reading["rss_bytes"] <= reading["process_peak_bytes"]
    assert reading["rss_anon_bytes"] + reading["rss_file_bytes"] <= reading["rss_bytes"] + 64 * MiB  # + shmem
    assert 0 < reading["available_bytes"] < reading["total_bytes"] and reading["swap_used_bytes"] >= 0
    if os.path.exists("/proc/pressure/memory"):
        assert 0 <= reading["pressure"] <= 100 and "pressure_full" in reading
    assert "wired" in os_memory.unavailable()["wired_bytes"]  # absent, and why


@LINUX_ONLY
def test_linux_anonymous_memory_grows_with_what_the_process_touches():
    # In a fresh process: a long-lived one (pytest after many tests) can hand back pages it already holds.
    code = textwrap.dedent("""
        import numpy as np
        from mlxbench.machine.os_memory import Reader
        reader = Reader()
        before, cheap_before = reader.read()["rss_anon_bytes"], reader.read_resident()["rss_anon_bytes"]
        block = np.ones(128 * 2**20, dtype=np.uint8)  # written, so resident
        full, cheap = reader.read(), reader.read_resident()
        print(full["rss_anon_bytes"] - before, cheap["rss_anon_bytes"] - cheap_before,
              abs(cheap["rss_bytes"] - full["rss_bytes"]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    grew, cheap_grew, cheap_off_by = map(int, out.split())
    # The sampler's cheap reading (statm) sees the same growth, and the same resident total as status.
    assert 120 * MiB <= grew <= 160 * MiB and 120 * MiB <= cheap_grew <= 160 * MiB
    assert cheap_off_by <= 4 * MiB


def test_a_process_that_is_gone_gives_no_figures_and_a_reason_never_an_exception():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    reading = Reader(child.pid).read()  # reaped: the pid names no process
    assert "process_bytes" not in reading and "process_peak_bytes" not in reading
    assert "total_bytes" in reading  # the system layer is still read
    assert os_memory.unavailable()


@MACOS_ONLY
def test_macos_reading_has_the_footprint_its_peak_and_the_system_layer():
    reading = Reader().read()
    assert set(PROCESS) | set(SYSTEM) | {"wired_bytes"} <= set(reading)
    assert 0 < reading["process_bytes"] <= reading["process_peak_bytes"]
    memsize = int(subprocess.run(["sysctl", "-n", "hw.memsize"], capture_output=True, text=True).stdout)
    assert reading["total_bytes"] == memsize
    assert 0 < reading["available_bytes"] <= memsize and 0 < reading["wired_bytes"] < memsize
    assert reading["pressure"] in os_memory.PRESSURE_LEVELS and reading["swap_used_bytes"] >= 0
    assert "rss_anon_bytes" in os_memory.unavailable()


@MACOS_ONLY
def test_macos_footprint_grows_with_what_the_process_touches():
    reader = Reader()
    before = reader.read()["process_bytes"]
    block = touched(128 * MiB)
    after = reader.read()
    assert after["process_bytes"] - before >= 120 * MiB
    assert after["process_peak_bytes"] >= after["process_bytes"]
    del block


@MACOS_ONLY
def test_macos_rusage_of_a_process_that_is_gone_says_why():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert "process_bytes" not in Reader(child.pid).read()
    assert "proc_pid_rusage" in os_memory.unavailable()["process_bytes"]


# --- the divergence, judged -----------------------------------------------------------------------


def timeline(process, active, cache, swap=None) -> dict:
    n = len(process)
    data = {"t": [i * 0.01 for i in range(n)], "process": process, "active": active, "cache": cache,
            "peak": active, "phases": []}
    if swap is not None:
        data["swap_used"] = swap
    return data


def verdict(tl: dict, mlx_peak: int, swap_before: int = 0) -> dict:
    before = {"process_bytes": tl["process"][0], "swap_used_bytes": swap_before, "mlx_held_bytes": 0}
    after = {"process_bytes": tl["process"][-1], "swap_used_bytes": (tl.get("swap_used") or [0])[-1]}
    return memory_truth.summarize(tl, before, after, mlx_peak, own_peak=False)["divergence"]


def test_cache_held_when_the_process_peaked_is_named_as_the_cause_with_the_gap():
    base = 100 * MiB
    div = verdict(timeline([base, base + 50 * MiB, base + 450 * MiB], [0, 50 * MiB, 10 * MiB],
                           [0, 0, 440 * MiB]), mlx_peak=50 * MiB)
    assert div["flagged"] and div["cause"] == memory_truth.CACHE
    assert div["gap_bytes"] == 400 * MiB and "MLX held 461 MB of freed buffers" in div["detail"]  # MB: 10^6


def test_memory_outside_mlx_is_named_when_mlx_holds_little():
    base = 100 * MiB
    div = verdict(timeline([base, base + 300 * MiB], [0, 20 * MiB], [0, 0]), mlx_peak=20 * MiB)
    assert div["flagged"] and div["cause"] == memory_truth.OUTSIDE


def test_swap_growth_is_named_when_neither_cache_nor_outside_memory_explains_it():
    base = 100 * MiB
    div = verdict(timeline([base, base + 200 * MiB], [0, 20 * MiB], [0, 50 * MiB], swap=[0, 500 * MiB]),
                  mlx_peak=20 * MiB)
    assert div["flagged"] and div["cause"] == memory_truth.SWAP


def test_a_gap_within_the_margin_is_not_flagged_and_the_margin_is_at_least_64_mb():
    base = 100 * MiB
    div = verdict(timeline([base, base + 70 * MiB], [0, 20 * MiB], [0, 40 * MiB]), mlx_peak=20 * MiB)
    assert div["flagged"] is False and div["margin_bytes"] == 64 * MiB and div["cause"] is None
    big = verdict(timeline([base, base + 2200 * MiB], [0, 2000 * MiB], [0, 0]), mlx_peak=2000 * MiB)
    assert big["margin_bytes"] == 0.15 * 2000 * MiB and big["flagged"] is False


def test_without_a_process_figure_the_divergence_cannot_tell():
    div = memory_truth.summarize({"t": [0.0], "active": [0], "cache": [0], "phases": []}, {}, {}, 10 * MiB,
                                 own_peak=False)["divergence"]
    assert div["flagged"] is None and div["detail"].startswith("cannot tell")


def test_the_baseline_is_what_the_process_held_outside_mlx_when_the_timed_steps_began():
    tl = timeline([100 * MiB, 180 * MiB, 200 * MiB], [0, 50 * MiB, 60 * MiB], [0, 10 * MiB, 0])
    before = {"process_bytes": 100 * MiB, "mlx_held_bytes": 0}
    memory = memory_truth.summarize(tl, before, {}, 60 * MiB, own_peak=False, baseline_at_s=0.015)
    assert memory["process"]["baseline_bytes"] == 120 * MiB  # 180 − 50 active − 10 cache
    assert memory["process"]["before_setup_bytes"] == 100 * MiB
    assert memory["divergence"]["gap_bytes"] == 200 * MiB - 120 * MiB - 60 * MiB


def test_profile_memory_records_the_os_layers_and_a_verdict():
    with mlxbench.profile_memory() as prof:
        x = mx.ones((32 * MiB // 4,))
        mx.eval(x)
        del x
    memory = prof.to_dict()["memory"]
    assert memory["divergence"]["flagged"] in (False, True)
    assert memory["process"]["peak_bytes"] >= memory["process"]["baseline_bytes"]
    assert memory["system"]["total_bytes"] > 0


# --- the acceptance case: a real training sweep through the runner ------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = ("cache kept", "clear every step")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """suites/memory-settings.yaml's quick profile, its first two variants, each in a worker process."""
    from mlxbench.results.run import load_run

    out = tmp_path_factory.mktemp("memory-settings")
    done = subprocess.run([sys.executable, "-m", "mlxbench", "run", "suites/memory-settings.yaml", "--profile",
                           "quick", "--only", *DEMO, "--out", str(out), "--no-calibrate"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = [p for p in out.glob("*/*") if p.is_dir()]
    return load_run(run_dir), done.stdout


@LINUX_ONLY
def test_every_record_carries_the_process_and_system_layers(demo_run):
    run, _ = demo_run
    assert len(run.records) == 2
    for record in run.records:
        process, system = record.memory["process"], record.memory["system"]
        assert process["baseline_bytes"] > 0 and process["peak_bytes"] > process["baseline_bytes"]
        assert process["peak_source"] == "the OS's high-water mark" and process["swap_peak_bytes"] >= 0
        assert system["total_bytes"] > system["available_min_bytes"] > 0 and system["swap_growth_bytes"] >= 0
        assert system["pressure_max"] is not None or "pressure" in record.memory["unavailable"]
        assert record.metrics["process_peak_bytes"] == process["peak_bytes"]
        assert {"process", "rss_anon", "rss_file", "available", "swap_used"} <= set(record.memory_timeline)


@LINUX_ONLY
def test_a_cache_that_is_never_cleared_is_flagged_with_its_gap_and_the_cleared_twin_is_not(demo_run):
    run, stdout = demo_run
    kept, cleared = (next(r for r in run.records if r.variant == v) for v in DEMO)
    flagged = kept.memory["divergence"]
    assert flagged["flagged"] and flagged["cause"] == memory_truth.CACHE
    assert flagged["gap_bytes"] > flagged["margin_bytes"]
    assert f"{flagged['gap_bytes'] / 1e6:.0f} MB beyond MLX's peak" in flagged["detail"]
    assert cleared.params["clear_cache_threshold"] == 0
    assert cleared.memory["divergence"]["flagged"] is False and cleared.memory["divergence"]["cause"] is None
    assert "cache not given back" in stdout.split("clear every step")[0]  # said as the case ended


@LINUX_ONLY
def test_the_report_shows_the_memory_truth_table_and_three_layer_charts(demo_run):
    from mlxbench.report.html import render_run
    from mlxbench.results import units

    run, _ = demo_run
    page = render_run(run)
    table = page.split('id="memory"', 1)[1]
    kept = table.split('data-truth-variant="cache kept"', 1)[1].split("</tr>", 1)[0]
    gap = next(r for r in run.records if r.variant == "cache kept").memory["divergence"]["gap_bytes"]
    assert "cache not given back" in kept and f">{units.mb(gap)}<" in kept  # the one MB format
    assert "cache not given back" not in table.split('data-truth-variant="clear every step"', 1)[1].split("</tr>", 1)[0]
    assert table.count("<svg") == 2 and "active buffers only, not its cache" in page
