"""Run directories written as real files, in the record format the runner writes.

The figures are shaped like a real training-memory run on a laptop; every case a
report must not hide is in it: a failed case, a wide timing, an equivalence
failure, a leak, and a sweep.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

from mlxbench import stats
from mlxbench.results.record import Record
from mlxbench.workloads.train import Train

SUITE = {
    "name": "training-memory",
    "description": "Peak memory and step time of gradient checkpointing and micro-batching",
    "workload": "train",
    "baseline": "baseline",
    "warmup": 2,
    "repeat": 5,
    "defaults": {"model": "tiny", "batch_size": 8, "seq_length": 256},
    "variants": {
        "baseline": {},
        "micro-batch M=2": {"micro_batch_size": 2},
        "GC only": {"gradient_checkpointing": True},
        "GC + M=4": {"gradient_checkpointing": True, "micro_batch_size": 4},
    },
    "sweep": {"seq_length": [256, 512]},
    "metrics": [m.to_dict() for m in Train.declared_metrics().values()],
}
ENV = {
    "os": {"system": "Darwin", "release": "24.1.0", "platform": "macOS-15.1-arm64-arm-64bit"},
    "machine": "arm64",
    "cpu": {"name": "Apple M3 Pro", "physical_cores": 12, "logical_cores": 12},
    "memory_total_bytes": 38654705664,
    "mlx": {"version": "0.29.1", "device": "gpu", "backend": "Metal",
            "device_info": {"device_name": "Apple M3 Pro", "architecture": "applegpu_g15s"}},
    "mlx_lm": {"version": "0.28.0"}, "python": "3.12.4",
    "blas": {"name": "Accelerate", "optimized": True},
    "mlxbench": {"version": "0.1.0", "git_sha": "0123456789abcdef0123456789abcdef01234567"},
    "hostname": "laptop", "captured_at": "2026-11-24T10:00:00+0000", "env_id": "e1",
}
# (peak MB, step time s) per variant at seq_length 256; 512 doubles time and memory roughly.
FIGURES = {"baseline": (1000, 1.00), "micro-batch M=2": (700, 1.10), "GC only": (650, 1.30),
           "GC + M=4": (600, 1.25)}

CASE_IDS = {"baseline": "base", "micro-batch M=2": "mb2", "GC only": "gc", "GC + M=4": "gcm4"}


def timeline(peak_mb: float, step_s: float) -> dict:
    """A believable memory timeline: setup climbs, warm-up and steps saw-tooth to the peak."""
    t, active = [], []
    for i in range(60):
        t.append(i * step_s / 10)
        active.append(int(peak_mb * 1e6 * (0.3 + 0.7 * ((i % 10) / 9)) if i >= 10 else peak_mb * 1e5 * i / 3))
    return {"t": t, "active": active, "cache": [0] * 60, "peak": [max(active[: i + 1]) for i in range(60)],
            "rss": [a + 200_000_000 for a in active],
            "phases": [{"name": "setup", "start": 0.0}, {"name": "warmup", "start": t[10]},
                       {"name": "step", "start": t[30]}]}


def record(variant: str, seq_length: int, *, status: str = "ok", spread: float = 0.02, scale: float = 1.0,
           seed: int = 0) -> Record:
    peak_mb, step_s = FIGURES[variant]
    factor = seq_length / 256
    peak_bytes = int(peak_mb * 1e6 * factor)
    rng = random.Random(f"{variant}{seq_length}{seed}")
    step = step_s * factor * scale
    samples = [step * (1 + spread * (rng.random() - 0.5) * 2) for _ in range(5)]
    summary = stats.summarize(samples)
    tokens = 8 * seq_length
    rec = Record(
        suite=SUITE["name"], run_id="20261124-100000", case_id=f"{CASE_IDS[variant]}-{seq_length}",
        variant=variant, workload="train", sweep={"seq_length": seq_length},
        params={**SUITE["defaults"], **SUITE["variants"][variant], "seq_length": seq_length},
        seed=0, warmup=2, repeat=5, status=status,
        metrics={"step_time_s": summary, "tokens_per_s": tokens / summary["median"],
                 "peak_memory_bytes": peak_bytes, "active_memory_bytes": peak_bytes // 3,
                 "cache_memory_bytes": 0, "peak_rss_bytes": peak_bytes + 200_000_000, "loss": 6.93},
        memory_timeline=timeline(peak_mb * factor, step),
        equivalence_values={"loss": 6.93, "grad_norm": 1.5, "rtol": 1e-4},
        is_baseline=variant == "baseline", env_id="e1", started_at="2026-11-24T10:00:00+00:00", duration_s=12.0,
    )
    if variant != "baseline":
        rec.equivalence = {"baseline_case_id": f"base-{seq_length}", "matches": True, "mismatches": [],
                           "values": {"loss": 6.93}, "baseline_values": {"loss": 6.93}, "rtol": 1e-4}
    if status != "ok":
        rec.metrics, rec.memory_timeline, rec.equivalence = {}, None, None
        rec.error = {
            "message": "[METAL] Command buffer execution failed: Insufficient Memory",
            "traceback": "Traceback (most recent call last):\n  File \"worker.py\", line 80, in run\nRuntimeError: "
                         "[METAL] Command buffer execution failed: Insufficient Memory"}
    return rec


def training_records() -> list[Record]:
    """Eight cases: GC + M=4 at 512 ran out of memory, micro-batch at 512 timed wide,
    GC only at 256 lost equivalence, GC only at 512 leaks."""
    records = []
    for seq in (256, 512):
        for variant in FIGURES:
            if variant == "GC + M=4" and seq == 512:
                records.append(record(variant, seq, status="oom"))
                continue
            rec = record(variant, seq, spread=0.4 if (variant, seq) == ("micro-batch M=2", 512) else 0.02)
            if (variant, seq) == ("GC only", 256):
                rec.equivalence.update(matches=False, mismatches=["loss"], values={"loss": 7.2})
            if (variant, seq) == ("GC only", 512):
                rec.leak = {"slope_bytes_per_step": 2_000_000.0, "threshold_bytes_per_step": 65536.0,
                               "leaking": True}
            records.append(rec)
    return records


def write_run(run_dir: Path, records: list, suite: dict | None = None, env: dict | None = None) -> Path:
    """A run directory with records.jsonl, env.json and suite.yaml, as the runner leaves it.

    ``records``: Records, or plain dicts (as an older version, or a hostile writer, left them).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = [r.to_json() if isinstance(r, Record) else json.dumps(r) for r in records]
    (run_dir / "records.jsonl").write_text("".join(line + "\n" for line in lines))
    (run_dir / "env.json").write_text(json.dumps(ENV if env is None else env))
    (run_dir / "suite.yaml").write_text(yaml.safe_dump(SUITE if suite is None else suite, sort_keys=False))
    return run_dir
