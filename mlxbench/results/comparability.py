"""Which results form one series: a record's context (what breaks comparability) and info (what does not).

As conbench splits a result's fingerprint: two results are one series when their context is the
same — the suite, the case's parameters, the machine, MLX's device and backend, the BLAS, Python's
minor version. The versions of the packages under test, the commit, mlxbench's own version and
the time are info: they are what a history puts on its x axis, so they never split a series.
A round of a case (#23's ``--rounds``) is the same case: its ``round`` key is left out.
"""

from __future__ import annotations

import hashlib
import json

ROUND_KEYS = ("round",)


def machine_of(env: dict) -> str:
    """The machine's name as a series shows it: its hostname, else its chip."""
    return str(env.get("hostname") or (env.get("cpu") or {}).get("name") or "unknown machine")


def chip_of(env: dict) -> str:
    """The chip, as the llama.cpp community's table names it: MLX's device name, else the CPU's."""
    device = ((env.get("mlx") or {}).get("device_info") or {}).get("device_name")
    return str(device or (env.get("cpu") or {}).get("name") or "")


def _case(record) -> dict:
    params = {k: v for k, v in (record.params or {}).items() if k not in ROUND_KEYS}
    # A case without parameters (a pytest-benchmark test) is known by its variant alone.
    return {"workload": record.workload, "params": params} if params else {"variant": record.variant}


def context(record, env: dict) -> dict:
    """What must be equal for two results to be compared."""
    cpu, mlx = env.get("cpu") or {}, env.get("mlx") or {}
    python = str(env.get("python") or "")
    return {
        "suite": record.suite, **_case(record),
        "machine": {"name": machine_of(env), "cpu": cpu.get("name"), "cores": cpu.get("physical_cores"),
                    "memory_total_bytes": env.get("memory_total_bytes"), "arch": env.get("machine"),
                    "os": (env.get("os") or {}).get("system")},
        "backend": {"device": mlx.get("device"), "backend": mlx.get("backend")},
        "blas": (env.get("blas") or {}).get("name"),
        "python": ".".join(python.split(".")[:2]),
    }


def key_of(context_: dict) -> str:
    """A short stable fingerprint of a context: equal contexts, equal keys."""
    return hashlib.sha256(json.dumps(context_, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _target(env: dict, kind: str) -> dict:
    """The history target a run measured (env.json's ``history`` entry, written by a history or
    bisect), when it is of ``kind`` ('commit' or 'versions')."""
    target = env.get("history")
    return target if isinstance(target, dict) and target.get("kind") == kind else {}


def _pins(text: str) -> dict[str, str]:
    """'mlx==0.30.6 mlx-lm==0.30.7' as {name: version}."""
    pairs = (part.split("==", 1) for part in str(text).replace(",", " ").split() if "==" in part)
    return {name.strip(): version.strip() for name, version in pairs}


def versions(record, env: dict) -> dict[str, str]:
    """The versions a record really ran under: read in its worker where it says, else its run's env,
    else the pins a history installed, else the env's MLX and mlx-lm."""
    found = getattr(record, "versions", None) or env.get("versions") or _pins(_target(env, "versions").get("ref", ""))
    if isinstance(found, dict) and found:
        return {str(k): str(v) for k, v in found.items()}
    out = {"mlx": (env.get("mlx") or {}).get("version"), "mlx-lm": (env.get("mlx_lm") or {}).get("version")}
    return {k: str(v) for k, v in out.items() if v}


def commit(record, env: dict) -> str | None:
    """The commit of the user's repository a record ran at, for a history across commits."""
    return getattr(record, "commit", None) or env.get("commit") or _target(env, "commit").get("ref") or None


def info(record, env: dict) -> dict:
    """What a record says of itself that does not break comparability."""
    return {"versions": versions(record, env), "commit": commit(record, env),
            "mlxbench": (env.get("mlxbench") or {}).get("version"), "env_id": env.get("env_id"),
            "os_release": (env.get("os") or {}).get("release"), "started_at": record.started_at}


def label(record, env: dict) -> str:
    """A point's name on the x axis: its commit, else its versions ('mlx 0.30.6 · mlx-lm 0.30.7')."""
    sha = commit(record, env)
    if sha:
        return str(sha)[:12]
    return " · ".join(f"{name} {version}" for name, version in sorted(versions(record, env).items()))


def order_key(record, env: dict) -> str:
    """A text that sorts points in history order: commit position, else versions, else time."""
    position = getattr(record, "commit_order", None)
    position = env.get("commit_order", _target(env, "commit").get("order")) if position is None else position
    if isinstance(position, int) and commit(record, env):
        return f"c{position:012d}"
    found = versions(record, env)
    if found:
        return "v" + " ".join(f"{name}={_sortable(v)}" for name, v in sorted(found.items()))
    return "t" + (record.started_at or "")


def _sortable(version: str) -> str:
    """A version as text that sorts as versions do: 0.9.1 before 0.29.4."""
    from packaging.version import InvalidVersion, Version

    try:
        parsed = Version(version)
    except InvalidVersion:
        return version
    release = ".".join(f"{part:06d}" for part in (parsed.release + (0, 0, 0))[:4])
    # A pre-release sorts before its release: 'a'/'b'/'rc' < '~' (final).
    pre = "".join(map(str, parsed.pre)) if parsed.pre else "~"
    return f"{release}{pre}"
