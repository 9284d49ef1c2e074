"""What a suite may ask for before anything is built: how many cases, and where its hostfiles are."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mlxbench.suite.source import KeyPath, Source


def check_count(variants: int, sweep: dict, limit: int, source: Source, at: KeyPath) -> None:
    """Refuse a suite that expands to more than ``limit`` (max_cases) cases, counted without building one."""
    axes = {k: len(v) for k, v in sweep.items() if isinstance(v, list)}
    count = variants * math.prod(axes.values())
    if count > limit:
        shape = " × ".join([f"{variants} variant{'s' * (variants != 1)}", *(f"{n} {k}" for k, n in axes.items())])
        raise source.error(at, f"expected at most {limit} cases (max_cases), got {count} ({shape}); "
                               f"raise max_cases in the suite or with --set max_cases=N to run more")


def anchored(value: Any, folder: Path) -> Any:
    """A ``distributed`` value whose relative hostfile is made absolute from ``folder``."""
    hostfile = value.get("hostfile") if isinstance(value, dict) else None
    if isinstance(hostfile, str) and hostfile and not Path(hostfile).expanduser().is_absolute():
        return {**value, "hostfile": str(folder / hostfile)}
    return value


def anchor_hostfiles(defaults: dict, fields: dict, folder: Path) -> None:
    """A hostfile the suite names relatively is read from the suite's folder, wherever mlxbench runs
    (``--set`` values, typed where the command runs, stay relative to the current folder)."""
    if "distributed" in defaults:
        defaults["distributed"] = anchored(defaults["distributed"], folder)
    if isinstance(variants := fields.get("variants"), dict):
        fields["variants"] = {name: {**o, "distributed": anchored(o["distributed"], folder)}
                              if isinstance(o, dict) and "distributed" in o else o for name, o in variants.items()}
    if isinstance(sweep := fields.get("sweep"), dict) and isinstance(sweep.get("distributed"), list):
        fields["sweep"] = {**sweep, "distributed": [anchored(v, folder) for v in sweep["distributed"]]}
