"""The results database on SQLite: import is idempotent, series come back by comparability key in
version order, migrations are versioned, bad input is one line."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from sqlalchemy import text
from history_runs import VERSIONS, history_run
from sample_runs import training_records, write_run

from mlxbench.errors import UserError
from mlxbench.results import db_schema
from mlxbench.results.db import connect, default_url, index_run


@pytest.fixture
def db(tmp_path):
    with connect(f"sqlite:///{tmp_path / 'results.db'}") as database:
        yield database


def _dump(path) -> list:
    """Every row of every table, to compare a database before and after."""
    with sqlite3.connect(path) as conn:
        tables = [t for (t,) in conn.execute("select name from sqlite_master where type='table' order by name")]
        return [(t, sorted(conn.execute(f"select * from {t}").fetchall(), key=repr)) for t in tables
                if t != "schema_version"]


def test_a_series_has_one_point_per_version_in_version_order(db, tmp_path):
    for version in reversed(VERSIONS):  # imported newest first: the order comes from the versions
        db.import_run(history_run(tmp_path, version, scale=1.3 if version == "0.32.4" else 1.0))
    points = db.series("training-memory", "step_time_s", variant="baseline")
    assert [p.label for p in points] == [f"mlx {v} · mlx-lm 0.28.0" for v in VERSIONS]
    assert len({p.key for p in points}) == 1
    assert all(len(p.samples) == 5 for p in points)
    assert points[2].median == pytest.approx(1.3 * points[0].median, rel=0.05)
    assert points[0].median == float(np.median(points[0].samples))
    assert points[0].case_label == "baseline · seq_length = 256"


def test_importing_a_run_again_changes_nothing(db, tmp_path):
    run_dir = write_run(tmp_path / "run", training_records())
    assert db.import_run(run_dir) == 8
    before = _dump(tmp_path / "results.db")
    assert db.import_run(run_dir) == 8
    assert _dump(tmp_path / "results.db") == before


def test_per_step_samples_and_exact_figures_are_stored(db, tmp_path):
    db.import_run(write_run(tmp_path / "run", training_records()))
    [timed] = db.series("training-memory", "step_time_s", case_id="base-256")
    [peak] = db.series("training-memory", "peak_memory_bytes", case_id="base-256")
    assert len(timed.samples) == 5
    assert peak.samples == [1e9] and peak.median == 1e9


def test_a_failed_case_is_no_point(db, tmp_path):
    db.import_run(write_run(tmp_path / "run", training_records()))
    assert db.series("training-memory", "step_time_s", case_id="gcm4-512") == []


def test_another_machine_is_another_series_and_merges_into_one_database(db, tmp_path):
    db.import_run(history_run(tmp_path, "0.30.6"))
    db.import_run(history_run(tmp_path, "0.30.6", hostname="studio", chip="Apple M2 Ultra"))
    points = db.series("training-memory", "step_time_s", variant="baseline")
    assert sorted(p.machine for p in points) == ["laptop", "studio"]
    assert len({p.key for p in points}) == 2
    assert [p.machine for p in db.series("training-memory", "step_time_s", machine="studio")] == ["studio"] * 2


def test_rounds_and_reruns_at_one_version_pool_into_one_point(db, tmp_path):
    for seed in (0, 1):
        db.import_run(history_run(tmp_path, "0.30.6", seed=seed))
    [point] = db.series("training-memory", "step_time_s", variant="baseline")
    assert len(point.samples) == 10 and len(point.runs) == 2


def test_a_new_database_has_every_migration_once(tmp_path):
    path = tmp_path / "new.db"
    connect(f"sqlite:///{path}").close()
    connect(f"sqlite:///{path}").close()  # opening again applies nothing twice
    with sqlite3.connect(path) as conn:
        versions = [v for (v,) in conn.execute("select version from schema_version")]
    assert versions == [v for v, _, _ in db_schema.MIGRATIONS]


def test_a_database_from_a_newer_mlxbench_is_refused_in_one_line(tmp_path):
    path = tmp_path / "newer.db"
    connect(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("insert into schema_version values (?, '2030-01-01')", (db_schema.LATEST + 1,))
    with pytest.raises(UserError, match=rf"expected a database of schema version ≤ {db_schema.LATEST}, got"):
        connect(f"sqlite:///{path}")


def test_the_default_database_is_mlxbench_db_or_results(monkeypatch):
    monkeypatch.delenv("MLXBENCH_DB", raising=False)
    assert default_url() == "sqlite:///results/mlxbench.db"
    monkeypatch.setenv("MLXBENCH_DB", "postgresql://ci@db/mlxbench")
    assert default_url() == "postgresql://ci@db/mlxbench"


def test_bad_urls_and_filters_are_one_line(db):
    with pytest.raises(UserError, match="--db: expected a database URL"):
        connect("not a url")
    with pytest.raises(UserError, match="series: colour: expected a filter among"):
        db.series("training-memory", "step_time_s", colour="red")


def test_db_import_command_imports_folders_and_says_so(tmp_path):
    runs = [history_run(tmp_path / "runs", v) for v in VERSIONS]
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    done = subprocess.run([sys.executable, "-m", "mlxbench", "db", "import", *map(str, runs), "--db", url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "3 runs" in done.stdout and "6 records" in done.stdout
    with connect(url) as database:
        assert len(database.series("training-memory", "step_time_s", variant="baseline")) == 3


def test_db_import_of_a_folder_that_is_no_run_exits_2_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mlxbench", "db", "import", str(tmp_path / "nothing"),
                           "--db", f"sqlite:///{tmp_path / 'cli.db'}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "nothing" in done.stderr


def test_db_import_of_a_folder_without_runs_says_so_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    done = subprocess.run([sys.executable, "-m", "mlxbench", "db", "import", str(tmp_path / "empty"),
                           "--db", f"sqlite:///{tmp_path / 'cli.db'}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("empty: expected a run folder or a folder of run folders, got none in it")


def test_a_copied_run_folder_is_one_run_and_same_named_folders_of_two_histories_are_two(db, tmp_path):
    original = history_run(tmp_path / "a", "0.30.6")
    db.import_run(original)
    db.import_run(shutil.copytree(original, tmp_path / "copied" / original.name))
    [point] = db.series("training-memory", "step_time_s", variant="baseline")
    assert len(point.runs) == 1 and len(point.samples) == 5
    other = shutil.copytree(original, tmp_path / "b" / original.name)  # another history's folder, same name
    env = json.loads((other / "env.json").read_text())
    (other / "env.json").write_text(json.dumps({**env, "captured_at": "2026-12-01T09:00:00+0000"}))
    db.import_run(other)
    [point] = db.series("training-memory", "step_time_s", variant="baseline")
    assert len(point.runs) == 2


def test_a_history_target_names_the_point_by_its_commit_or_pins(db, tmp_path):
    for order, sha in enumerate(("f" * 40, "a" * 40)):  # sorted by position in history, not by name
        run = history_run(tmp_path / "commits", "0.30.6", seed=order)
        env = json.loads((run / "env.json").read_text())
        env["history"] = {"kind": "commit", "label": sha[:7], "order": order, "ref": sha}
        (run / "env.json").write_text(json.dumps(env))
        db.import_run(run)
    assert [p.label for p in db.series("training-memory", "step_time_s", variant="baseline")] == ["f" * 12, "a" * 12]
    run = history_run(tmp_path / "pins", "0.30.6", seed=5)
    env = json.loads((run / "env.json").read_text())
    env["history"] = {"kind": "versions", "label": "mlx==0.31.0", "order": 0, "ref": "mlx==0.31.0 mlx-lm==0.31.1"}
    (run / "env.json").write_text(json.dumps(env))
    db.import_run(run)
    labels = {p.label for p in db.series("training-memory", "step_time_s", variant="baseline")}
    assert "mlx 0.31.0 · mlx-lm 0.31.1" in labels


def test_a_later_migration_is_applied_once_to_a_database_that_lacks_it(tmp_path, monkeypatch):
    path = tmp_path / "older.db"
    connect(f"sqlite:///{path}").close()  # a database as this version makes it
    applied = []

    def add_a_column(conn):
        applied.append(2)
        conn.execute(text("alter table runs add column note text"))

    steps = (*db_schema.MIGRATIONS, (db_schema.LATEST + 1, "a note per run", add_a_column))
    monkeypatch.setattr(db_schema, "MIGRATIONS", steps)
    monkeypatch.setattr(db_schema, "LATEST", db_schema.LATEST + 1)
    connect(f"sqlite:///{path}").close()
    connect(f"sqlite:///{path}").close()
    assert applied == [2]
    with sqlite3.connect(path) as conn:
        assert "note" in [row[1] for row in conn.execute("pragma table_info(runs)")]
        assert [v for (v,) in conn.execute("select version from schema_version order by version")] == [1, 2]


def test_indexing_a_finished_run_stores_it_or_warns_without_raising(tmp_path):
    run_dir = write_run(tmp_path / "run", training_records())
    assert index_run(run_dir, f"sqlite:///{tmp_path / 'ok.db'}").startswith("stored 8 records in sqlite:///")
    said = index_run(run_dir, f"postgresql://nobody@/none?host={tmp_path / 'no-server'}")
    assert said.startswith("warning: not stored in the results database (--db ")
    assert said.endswith(f"mlxbench db import {run_dir} stores it later")


def test_mlxbench_run_also_stores_its_run_beside_its_results(tmp_path):
    from pathlib import Path

    grid = Path(__file__).parent / "fixtures" / "grid.yaml"
    env = {k: v for k, v in __import__("os").environ.items() if k != "MLXBENCH_DB"}
    done = subprocess.run([sys.executable, "-m", "mlxbench", "run", str(grid), "--only", "fp32", "--set", "repeat=2",
                           "--no-calibrate", "--out", str(tmp_path)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert f"stored 2 records in sqlite:///{tmp_path / 'mlxbench.db'}" in done.stdout
    with connect(f"sqlite:///{tmp_path / 'mlxbench.db'}") as database:
        points = database.series("grid", "step_time_s", variant="fp32")
    assert sorted(len(p.samples) for p in points) == [2, 2]  # n = 16 and n = 32, two timed steps each
