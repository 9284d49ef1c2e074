"""Where a report's figures come from: a run directory, or a pytest-benchmark JSON file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlxbench.results import store
from mlxbench.errors import UserError


@dataclass
class Run:
    path: Path
    records: list[dict]
    env: dict
    suite: dict

    @property
    def name(self) -> str:
        return self.suite.get("name") or next((r.get("suite") for r in self.records if r.get("suite")), "run")

    @property
    def run_id(self) -> str:
        return next((r.get("run_id") for r in self.records if r.get("run_id")), self.path.name)


def load_run(path: str | Path) -> Run:
    """The records, environment and resolved suite of a run directory (or a --benchmark-json file)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        try:
            from mlxbench.results.pytest_json import to_run
        except ImportError as err:  # the benchmark-CI piece is optional to the rest of the report
            raise UserError(f"{path}: cannot read pytest-benchmark JSON: {err}") from err
        records, env, suite = to_run(path)
        return Run(path, records, env, suite)
    if not path.is_dir():
        raise UserError(f"{path}: expected a run directory (results/<suite>/<run id>) or a "
                        f"pytest-benchmark .json file, got {'a file' if path.exists() else 'nothing there'}")
    records = store.read_records(path)
    if not records:
        raise UserError(f"{path / store.RECORDS}: expected at least one record, got none")
    return Run(path, records, store.read_env(path), store.read_suite(path))
