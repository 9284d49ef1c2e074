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

from mlxbench.results.record import Record, RecordError

RECORDS = "records.jsonl"
ENV = "env.json"
SUITE = "suite.yaml"


def append_record(run_dir: str | Path, record: Record) -> None:
    """Append one record as a single line and flush it to disk before returning.

    The line starts on a fresh line even when the file ends in a fragment a crash left.
    """
    path = Path(run_dir) / RECORDS
    line = record.to_json() + "\n"
    with open(path, "ab") as f:
        if f.tell() and not _ends_with_newline(path):
            line = "\n" + line
        f.write(line.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def read_records(run_dir: str | Path, problems: list[str] | None = None) -> list[Record]:
    """Every readable record of a run, in the order written.

    A line that is no record (cut short by a kill mid-write, not JSON, another program's)
    is skipped, and said in ``problems`` when given: every other line is kept.
    """
    path = Path(run_dir) / RECORDS
    if not path.exists():
        return []
    records = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                records.append(Record.from_dict(json.loads(raw.decode("utf-8"))))
            except (UnicodeDecodeError, json.JSONDecodeError, RecordError, TypeError) as err:
                if problems is not None:
                    problems.append(f"{path}:{number}: skipped: {str(err).splitlines()[0][:120]}")
    return records


def read_env(run_dir: str | Path) -> dict:
    """The run's environment (``env.json``), or {} when it has none."""
    path = Path(run_dir) / ENV
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}




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
