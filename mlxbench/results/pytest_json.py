"""Read a pytest-benchmark JSON file (``--benchmark-json`` output) as an mlxbench run.

``to_run(path)`` gives what a run directory gives — records, environment, suite —
so ``mlxbench report bench.json`` renders ``pytest --benchmark-only`` results with
the same tables and charts as ``mlxbench run`` results. One benchmark becomes one
record: its per-round timings become ``step_time_s``; the memory figures the
mlxbench pytest plugin put in ``extra_info`` become memory metrics.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mlxbench import stats
from mlxbench.bounded_yaml import read_text
from mlxbench.errors import UserError
from mlxbench.results.record import Record

MEMORY_FIGURES = ("peak_memory_bytes", "active_memory_bytes", "peak_rss_bytes")
# Where the mlxbench pytest plugin keeps mlxbench.machine.env.capture() inside machine_info.
ENV_KEY = "mlxbench"
# Top-level key where the plugin stores the pytest command line.
COMMAND_KEY = "mlxbench"
# extra_info keys that describe the case rather than measure it.
CASE_KEYS = ("workload", "params", "seed", "warmup_rounds")

EXPECTED = "expected a pytest-benchmark JSON file (pytest --benchmark-json=PATH)"
MAX_JSON_BYTES = 256 * 2**20


def _fail(path: Path, where: str, expected: str, got: str) -> UserError:
    return UserError(f"{path}: {where}: expected {expected}, got {got}")


def load(path: str | Path) -> dict:
    """The parsed pytest-benchmark JSON at ``path``, checked for the keys mlxbench reads."""
    path = Path(path)
    try:
        data = json.loads(read_text(path, "a pytest-benchmark JSON file", MAX_JSON_BYTES))
    except (RecursionError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: {EXPECTED}, got unreadable JSON ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        got = type(data).__name__ if not isinstance(data, dict) else "keys " + ", ".join(sorted(data)[:6])
        raise UserError(f"{path}: benchmarks: {EXPECTED}, got {got or 'an empty object'}")
    for i, bench in enumerate(data["benchmarks"]):
        if not isinstance(bench, dict) or not isinstance(bench.get("name"), str):
            raise _fail(path, f"benchmarks[{i}]", "a benchmark with a name", repr(bench)[:60])
        if not isinstance(bench.get("stats"), dict):
            raise _fail(path, f"benchmarks[{i}].stats", "a mapping of timing statistics",
                        repr(bench.get("stats"))[:60])
        extra = bench.setdefault("extra_info", {})
        if not isinstance(extra, dict):
            raise _fail(path, f"benchmarks[{i}].extra_info", "a mapping", repr(extra)[:60])
    return data


def _step_time(path: Path, i: int, bench: dict) -> dict:
    samples = bench["stats"].get("data")
    if not isinstance(samples, list) or not samples or not all(isinstance(s, (int, float)) for s in samples):
        # --benchmark-save files keep only summaries unless --benchmark-save-data is given.
        raise _fail(path, f"benchmarks[{i}].stats.data",
                    "the per-round timings (write the file with --benchmark-json, or "
                    "--benchmark-save with --benchmark-save-data)", repr(samples)[:40])
    return stats.summarize(samples)


def _is_summary(value) -> bool:
    return isinstance(value, dict) and "median" in value and isinstance(value.get("samples"), list)


def _env(data: dict) -> dict:
    """The run's environment: the plugin's capture, or what plain machine_info tells."""
    machine = data.get("machine_info") or {}
    env = machine.get(ENV_KEY)
    if isinstance(env, dict) and env.get("env_id"):
        return env
    # A file from pytest-benchmark without the mlxbench plugin: keep what it knows.
    cpu = machine.get("cpu") or {}
    env = {
        "os": {"system": machine.get("system"), "release": machine.get("release"),
               "platform": f"{machine.get('system', '?')} {machine.get('release', '')}".strip()},
        "machine": machine.get("machine"),
        "cpu": {"name": cpu.get("brand_raw") or machine.get("processor") or "unknown",
                "logical_cores": cpu.get("count")},
        "python": machine.get("python_version"),
        "notes": ["environment from pytest-benchmark's machine_info: the mlxbench pytest plugin "
                  "was not active, so MLX device, BLAS and memory figures are unknown"],
    }
    identity = json.dumps({k: env[k] for k in ("os", "machine", "cpu", "python")}, sort_keys=True)
    env["env_id"] = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return env


def _record(path: Path, i: int, bench: dict, suite: str, run_id: str, env_id: str, started_at: str) -> Record:
    extra = bench["extra_info"]
    params = bench.get("params") or {}
    name = bench["name"]
    metrics = {"step_time_s": _step_time(path, i, bench)}
    for key, value in extra.items():
        # Every other figure a benchmark recorded is a metric, in its own words: a number,
        # or a stats summary of a per-step figure (ttft_s, loss, …).
        if key in CASE_KEYS:
            continue
        if (isinstance(value, (int, float)) and not isinstance(value, bool)) or _is_summary(value):
            metrics[key] = value
    return Record(
        suite=suite, run_id=run_id,
        case_id=hashlib.sha256(bench.get("fullname", name).encode()).hexdigest()[:12],
        # One row per benchmark: a file mixes test functions whose parametrize axes
        # differ, so they are no sweep grid; the values stay in params.
        variant=name, workload=extra.get("workload", "pytest-benchmark"),
        params=extra.get("params") or dict(params), seed=extra.get("seed"),
        warmup=extra.get("warmup_rounds", 0), repeat=len(metrics["step_time_s"]["samples"]),
        metrics=metrics,
        inline=True,  # every benchmark of a pytest session shares one process
        env_id=env_id, started_at=started_at,
        duration_s=float(bench["stats"].get("total") or sum(metrics["step_time_s"]["samples"])),
    )


def to_run(path: str | Path) -> tuple[list[Record], dict, dict]:
    """Records, environment and suite of a pytest-benchmark JSON file; UserError if it is not one."""
    path = Path(path)
    data = load(path)
    env = _env(data)
    started_at = str(data.get("datetime") or "")
    run_id = started_at.replace(":", "").replace("-", "")[:15] or path.stem
    suite = {
        "name": path.stem,
        "description": f"pytest-benchmark {data.get('version', '?')} results from {path.name}",
        "workload": "pytest-benchmark",
        "baseline": None,
        "command": (data.get(COMMAND_KEY) or {}).get("command")
        or f"pytest --benchmark-only --benchmark-json={path.name}",
    }
    records = [_record(path, i, bench, suite["name"], run_id, env["env_id"], started_at)
               for i, bench in enumerate(data["benchmarks"])]
    return records, env, suite

