"""Run folders of one suite at several MLX versions and on several machines, as a history imports them."""

from __future__ import annotations

import copy
from pathlib import Path

from sample_runs import ENV, SUITE, record, write_run

VERSIONS = ("0.29.4", "0.30.6", "0.32.4")


def env_at(mlx_version: str, hostname: str = "laptop", chip: str = "Apple M3 Pro") -> dict:
    """The sample environment at another MLX version and/or on another machine."""
    env = copy.deepcopy(ENV)
    env["mlx"]["version"] = mlx_version
    env["hostname"] = hostname
    env["cpu"]["name"] = chip
    env["mlx"]["device_info"]["device_name"] = chip
    env["calibration"] = {"memory_read_gbps": 150.0 if chip == "Apple M3 Pro" else 800.0}
    return env


def history_run(root: Path, mlx_version: str, *, scale: float = 1.0, hostname: str = "laptop",
                chip: str = "Apple M3 Pro", seed: int = 0, variants=("baseline", "GC only")) -> Path:
    """One run of the sample suite at ``mlx_version``: its step times ``scale`` times the sample's."""
    run_id = f"{hostname}-{mlx_version}-{seed}"
    records = []
    for variant in variants:
        rec = record(variant, 256, scale=scale, seed=seed)
        rec.run_id = run_id
        records.append(rec)
    return write_run(root / run_id, records, SUITE, env_at(mlx_version, hostname, chip))
