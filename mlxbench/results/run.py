"""A run as every reader sees it: its records, environment, suite and metric declarations.

It comes from a run directory or from a pytest-benchmark JSON file; nothing else.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from mlxbench.errors import UserError
from mlxbench.results import store
from mlxbench.results.metrics import Metric, declarations
from mlxbench.results.record import Record


@dataclass
class Run:
    path: Path
    records: list[Record]
    env: dict
    suite: dict
    metrics: dict[str, Metric] = field(default_factory=dict)

    def __post_init__(self):
        if not self.metrics:
            self.metrics = declarations(self.suite.get("metrics"), self.records)

    @property
    def name(self) -> str:
        return self.suite.get("name") or next((r.suite for r in self.records if r.suite), "run")

    @property
    def workload(self) -> str:
        return self.suite.get("workload") or next((r.workload for r in self.records if r.workload), "")

    @property
    def run_id(self) -> str:
        return next((r.run_id for r in self.records if r.run_id), self.path.name)

    def sections(self, kind: str) -> list[dict]:
        """The report sections of ``kind`` the run's workload declared (they travel in its suite.yaml)."""
        return [s for s in self.suite.get("sections") or [] if isinstance(s, dict) and s.get("kind") == kind]

    def metric(self, name: str) -> Metric:
        return self.metrics[name]


def load_run(path: str | Path) -> Run:
    """The records, environment and resolved suite of a run directory (or a --benchmark-json file)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        from mlxbench.results.pytest_json import to_run

        records, env, suite = to_run(path)
        return Run(path, records, env, suite)
    if not path.is_dir():
        raise UserError(f"{path}: expected a run directory (results/<suite>/<run id>) or a "
                        f"pytest-benchmark .json file, got {'a file' if path.exists() else 'nothing there'}")
    problems: list[str] = []
    records = _read(path / store.RECORDS, "JSON lines", lambda: store.read_records(path, problems))
    for problem in problems:
        print(f"mlxbench: warning: {problem}", file=sys.stderr)
    if not records:
        raise UserError(f"{path / store.RECORDS}: expected at least one record, got none")
    # A case run in interleaved rounds is read as its pooled record (results.rounds); a run stopped before
    # a case's last round shows that case's rounds so far.
    pooled = {r.case_id for r in records if r.round is None}
    records = [r for r in records if r.round is None or r.case_id.rsplit("-round", 1)[0] not in pooled]
    env = _read(path / store.ENV, "JSON", lambda: store.read_env(path))
    if not isinstance(env, dict):
        raise UserError(f"{path / store.ENV}: expected a JSON object, got {type(env).__name__}")
    return Run(path, records, env, _read(path / store.SUITE, "YAML", lambda: store.read_suite(path)))


def _read(file: Path, what: str, reader):
    """``reader()``, with a file no reader could use (not UTF-8, not JSON, nested past Python's
    recursion, a number past Python's limits) said in one line."""
    try:
        return reader()
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError, JSONDecodeError are ValueErrors
        problem = ("nesting too deep" if isinstance(err, RecursionError) else
                   f"bytes that are not UTF-8 (at byte {err.start})" if isinstance(err, UnicodeDecodeError) else
                   str(err).splitlines()[0][:120])
        raise UserError(f"{file}: expected UTF-8 {what}, got {problem}") from None
