"""Achieved compute and memory traffic against the calibrated ceilings: the calibration itself,
decode's bandwidth utilisation on this machine, and the report's roofline section."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from mlxbench.machine import env
from mlxbench.report.html import render_run
from mlxbench.results import roofline
from mlxbench.results.run import load_run
from mlxbench.run import measure as loop
from mlxbench.workloads.generate import Generate

SUITE = """
name: roofline
workload: generate
warmup: 1
repeat: 2
defaults: {model: tiny, prompt_tokens: 16, generation_tokens: 4}
variants:
  pg: {}
"""


def test_read_bandwidth_is_calibrated_by_reading_not_by_writing_a_copy():
    reads = env.measure_read_bandwidth_gbps(megabytes=64, budget_s=0.6)
    assert set(reads) == set(env.READ_METHODS) and all(v > 0 for v in reads.values())


def test_decode_bandwidth_utilisation_is_below_the_calibrated_read_bandwidth():
    # A 114 MB float32 model: its weights do not fit in any CPU cache, so each decode step reads
    # them from memory. Above 100% the calibration under-measures the machine: a calibration bug.
    ceilings = roofline.ceilings({"calibration": env.measure_ceilings()})
    wl = Generate({**Generate.defaults(), "model": "small", "test": "tg", "generation_tokens": 6}, seed=0)
    figures = loop.measure(wl, warmup=1, repeat=2).metrics
    decode = next(p for p in roofline.phases(figures, ceilings, ["decode"]))
    print(f"decode reads {decode.bytes_per_s / 1e9:.2f} GB/s of {ceilings.bytes_per_s / 1e9:.2f} GB/s "
          f"calibrated: {decode.bandwidth_utilisation:.1%}")
    assert 0 < decode.bandwidth_utilisation < 1


def test_shares_are_null_with_the_reason_when_the_run_has_no_read_calibration():
    figures = {"decode_bytes_per_s": 1e9, "decode_flop_per_s": 1e8}
    for calibration, reason in (({}, "no read-bandwidth calibration"),
                                ({"matmul_fp32_gflops": 10, "memory_bandwidth_gbps": 4}, "measured a copy")):
        limits = roofline.ceilings({"calibration": calibration})
        phase, = roofline.phases(figures, limits, ["decode"])
        assert phase.bandwidth_utilisation is None and reason in limits.missing
        assert phase.intensity == pytest.approx(0.1)


def test_phases_come_from_the_declared_rate_names_whatever_the_workload():
    names = roofline.phase_names(["step_time_s", "train_flop_per_s", "prefill_flop_per_s",
                                  "prefill_bytes_per_s", "decode_bytes_per_s"])
    assert names == ["train", "prefill", "decode"]


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("roofline")
    (root / "suite.yaml").write_text(SUITE)
    done = subprocess.run([sys.executable, "-m", "mlxbench", "run", str(root / "suite.yaml"), "--out",
                           str(root / "results")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return next((root / "results" / "roofline").iterdir())


def test_the_report_shows_each_phase_s_share_of_the_ceilings_and_the_roofline_chart(calibrated_run):
    page = render_run(load_run(calibrated_run))
    section = page[page.index('id="roofline"'):page.index('id="failed"')]
    assert "GB/s — best of matvec" in section and "GFLOP/s — best of repeated" in section
    phases = re.findall(r'<tr data-phase="(\w+)">', section)
    assert sorted(phases) == ["decode", "prefill"]
    shares = re.findall(r'data-metric="(?:mfu|bandwidth_utilisation)">([\d.]+)%<', section)
    assert len(shares) == 4 and all(0 < float(s) < 100 for s in shares)
    assert "<svg" in section and "Arithmetic intensity" in section


def test_every_format_carries_each_case_s_mfu_and_bandwidth_utilisation(calibrated_run):
    run = load_run(calibrated_run)
    page = render_run(run)
    section = page[page.index('id="roofline"'):page.index('id="failed"')]
    in_html = sorted(float(s) for s in re.findall(r'data-metric="(?:mfu|bandwidth_utilisation)">([\d.]+)%<', section))
    done = subprocess.run([sys.executable, "-m", "mlxbench", "report", str(calibrated_run), "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [r for r in json.loads(done.stdout) if r["status"] == "ok"]
    names = ("prefill_mfu", "prefill_bandwidth_utilisation", "decode_mfu", "decode_bandwidth_utilisation")
    shares = [r[n] for r in rows for n in names if r.get(n) is not None]
    assert rows and all(0 < s < 1 for s in shares) and len(shares) == len(in_html)
    assert sorted(round(100 * s, 1) for s in shares) == in_html  # computed once: the same figures as the page
    for fmt in ("csv", "jsonl", "sql"):
        text = subprocess.run([sys.executable, "-m", "mlxbench", "report", str(calibrated_run), "--format", fmt],
                              capture_output=True, text=True, timeout=120).stdout
        assert "decode_bandwidth_utilisation" in text, fmt


def test_a_run_calibrated_by_an_older_copy_says_its_shares_are_not_judged(calibrated_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(calibrated_run, old)
    data = json.loads((old / "env.json").read_text())
    data["calibration"] = {"measured": True, "matmul_fp32_gflops": 20.0, "memory_bandwidth_gbps": 4.0}
    (old / "env.json").write_text(json.dumps(data))
    section = render_run(load_run(old)).split('id="roofline"')[1]
    assert "Shares not judged" in section and "measured a copy" in section


def test_a_share_above_the_ceiling_and_a_busy_calibration_are_flagged_not_shown_plain(calibrated_run, tmp_path):
    low = tmp_path / "low"
    shutil.copytree(calibrated_run, low)
    data = json.loads((low / "env.json").read_text())
    data["calibration"].update(memory_read_gbps=1e-6, other_processes_cpu_share=0.6)
    (low / "env.json").write_text(json.dumps(data))
    section = render_run(load_run(low)).split('id="roofline"')[1].split('id="failed"')[0]
    assert re.search(r'data-metric="bandwidth_utilisation">[\d.]+% ⚠<', section)
    assert "under-measured this machine" in section and "took 60% of the CPU while the ceilings" in section
