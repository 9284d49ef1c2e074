"""Constants of the memory model fitted to measured peaks, kept per environment id.

A calibration is a least-squares fit, with no constant below zero, of the measured peak minus
what is resident against the model's exact terms (``estimate.model``), one set of constants
per workload. It is stored as ``<env id>.json`` under the calibration folder (``$MLXBENCH_CACHE``
or ``~/.cache/mlxbench``, ``/estimate``): an estimate made on another machine or software stack
does not use it, and says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mlxbench.estimate.model import UPDATE, Estimate, default_constants, estimate, terms_of

MIN_RECORDS = 3  # fewer measured cases than this fit noise, not constants


def calibration_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = os.environ.get("MLXBENCH_CACHE") or cache / "mlxbench"
    return Path(root) / "estimate"


def fit(workload: str, rows: list[tuple[dict, int]]) -> dict[str, float]:
    """Constants of ``workload`` that best explain ``rows`` of (params, measured peak bytes).

    Terms that are zero in every row cannot be fitted and keep their default.
    """
    # Rows whose peak the optimizer update sets (by the defaults) say nothing of the other terms.
    defaults = default_constants(workload)
    rows = [(p, m) for p, m in rows if not _update_dominates(terms_of(workload, p)[1], defaults)] or rows
    split = [terms_of(workload, params) for params, _ in rows]
    names = sorted({k for _, terms in split for k, v in terms.items() if v and k != UPDATE})
    if not names:
        return defaults
    if len(rows) < 2 * len(names):
        # Too few records to fit each constant apart: scale the default ones together.
        column = np.array([[sum(terms.get(k, 0) * defaults.get(k, 0.0) for k in names)] for _, terms in split])
        scale, _ = _weighted_nnls(column, split, rows)
        return {**defaults, **{k: round(defaults.get(k, 0.0) * float(scale[0]), 4) for k in names}}
    a = np.array([[terms.get(k, 0) for k in names] for _, terms in split], dtype=float)
    solution, _ = _weighted_nnls(a, split, rows)
    return {**defaults, **{k: round(float(v), 4) for k, v in zip(names, solution)}}


def _weighted_nnls(a: np.ndarray, split: list, rows: list) -> tuple[np.ndarray, float]:
    """Non-negative least squares of (measured − resident) on ``a``, each row weighted by 1 / its peak
    (relative error matters, not bytes)."""
    b = np.array([peak - sum(resident.values()) for (resident, _), (_, peak) in zip(split, rows)], dtype=float)
    w = 1.0 / np.array([peak for _, peak in rows], dtype=float)
    from scipy.optimize import nnls  # here: scipy is 0.4 s of every `list` and worker that never calibrates

    return nnls(np.asarray(a, dtype=float) * w[:, None], b * w)


def _update_dominates(terms: dict, constants: dict) -> bool:
    step = sum(v * constants.get(k, 0.0) for k, v in terms.items() if k != UPDATE)
    return terms.get(UPDATE, 0) * constants.get(UPDATE, 0.0) > step


def save(env_id: str, workload: str, constants: dict[str, float], source: str, count: int) -> Path:
    path = calibration_dir() / f"{env_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = json.loads(path.read_text()) if path.is_file() else {}
    stored[workload] = {"constants": constants, "from": source, "records": count}
    path.write_text(json.dumps(stored, indent=1, sort_keys=True))
    return path


def load(env_id: str | None, workload: str) -> dict | None:
    """The stored calibration of ``workload`` for ``env_id``, or None."""
    if not env_id:
        return None
    path = calibration_dir() / f"{env_id}.json"
    try:
        return json.loads(path.read_text()).get(workload)
    except (OSError, ValueError, AttributeError):
        return None


def calibrated_estimate(workload: str, params: dict, env_id: str | None) -> Estimate:
    """The estimate with this environment's constants if it has them, else the defaults (and says which)."""
    stored = load(env_id, workload)
    if stored is None:
        return estimate(workload, params)
    return estimate(workload, params, stored["constants"],
                    f"calibrated for environment {env_id} from {stored['records']} records of {stored['from']}")
