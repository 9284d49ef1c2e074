"""Run results on disk: one JSON line per finished case in ``records.jsonl``, plus ``env.json``.

Layout of a run directory::

    results/<suite>/<run id>/
        suite.yaml      the resolved suite, as run
        env.json        mlxbench.env.capture() of the machine
        records.jsonl   one record per finished case, appended and flushed as each finishes
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

RECORDS = "records.jsonl"
ENV = "env.json"
SUITE = "suite.yaml"


def append_record(run_dir: str | Path, record: dict) -> None:
    """Append one record as a single line and flush it to disk before returning."""
    line = json.dumps(record, separators=(",", ":"), allow_nan=True) + "\n"
    with open(Path(run_dir) / RECORDS, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_records(run_dir: str | Path) -> list[dict]:
    """Every complete record of a run, in the order written.

    A line cut short by a kill mid-write is skipped: every other line is kept.
    """
    path = Path(run_dir) / RECORDS
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def read_env(run_dir: str | Path) -> dict:
    """The run's environment (``env.json``), or {} when it has none."""
    path = Path(run_dir) / ENV
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def blank_outcome(started_at: str) -> dict:
    """What a case hands back before anything is known: status ok, no figures, no error yet.

    The worker fills it in; the runner fills one in for a worker that died without one.
    """
    return {"status": "ok", "error": None, "metrics": None, "memory_timeline": None, "leak": None,
            "equivalence_values": None, "started_at": started_at, "duration_s": None}


def latest_by_case(records: list[dict]) -> list[dict]:
    """One record per case_id, the last one written, in the order cases first appeared.

    A case re-run on ``--resume`` appends a new line; its latest line is its result.
    """
    return list({r.get("case_id"): r for r in records}.values())


def new_run_id() -> str:
    """A run id that sorts by time and does not collide: ``20261124-191502-ab12``."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def write_env(run_dir: str | Path, env: dict) -> None:
    """Store the run's environment as ``env.json``."""
    (Path(run_dir) / ENV).write_text(json.dumps(env, indent=2) + "\n", encoding="utf-8")


def write_suite(run_dir: str | Path, suite: dict) -> None:
    """Store the resolved suite, as run, as ``suite.yaml``."""
    import yaml

    text = yaml.safe_dump(suite, sort_keys=False, allow_unicode=True)
    (Path(run_dir) / SUITE).write_text(text, encoding="utf-8")


def read_suite(run_dir: str | Path) -> dict:
    """The suite as the run stored it (``suite.yaml``), or {} when it has none; UserError if unreadable."""
    import yaml

    from mlxbench.errors import UserError

    path = Path(run_dir) / SUITE
    if not path.exists():
        return {}
    try:
        suite = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise UserError(f"{path}: expected YAML, got {str(err).splitlines()[0]}") from err
    if not isinstance(suite, dict):
        raise UserError(f"{path}: expected a mapping, got {type(suite).__name__}")
    return suite
