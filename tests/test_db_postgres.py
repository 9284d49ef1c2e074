"""The same runs imported into SQLite and into a real PostgreSQL server give the same answers."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from history_runs import VERSIONS, history_run
from postgres_server import CannotStart, postgres_url
from sample_runs import training_records, write_run

from mlxbench.results.db import connect

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'mlxbench[postgres]')")
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def postgres():
    try:
        with postgres_url() as url:
            yield url
    except CannotStart as err:
        pytest.skip(f"PostgreSQL cannot start here: {err}")


@pytest.fixture
def runs(tmp_path):
    folders = [history_run(tmp_path, v, scale=1.3 if v == VERSIONS[-1] else 1.0) for v in VERSIONS]
    folders.append(history_run(tmp_path, VERSIONS[0], hostname="studio", chip="Apple M2 Ultra"))
    folders.append(write_run(tmp_path / "sample", training_records()))
    return folders


def _answers(url: str, folders) -> dict:
    """Every query a history asks, on a database that ``folders`` were imported into (twice)."""
    with connect(url) as database:
        for folder in folders * 2:
            database.import_run(folder)
        out = {"suites": database.suites(), "environments": database.environments("training-memory"),
               "declarations": database.declarations("training-memory")}
        for metric in out["declarations"]:
            out[metric] = [asdict(p) for p in database.series("training-memory", metric)]
        out["studio"] = [asdict(p) for p in database.series("training-memory", "step_time_s", machine="studio")]
        return out


def test_sqlite_and_postgresql_answer_every_query_the_same(postgres, runs, tmp_path):
    on_sqlite = _answers(f"sqlite:///{tmp_path / 'same.db'}", runs)
    on_postgres = _answers(postgres, runs)
    assert on_sqlite["step_time_s"] and on_sqlite["studio"]  # the comparison has something to compare
    assert on_postgres == on_sqlite


def test_postgresql_migrates_once_and_merges_runs_imported_from_two_places(postgres, runs):
    with connect(postgres) as first, connect(postgres) as second:  # two machines pointed at one server
        first.import_run(runs[0])
        second.import_run(runs[3])
        machines = {p.machine for p in first.series("training-memory", "step_time_s")}
    assert {"laptop", "studio"} <= machines
