"""The results database's tables, one schema for SQLite and PostgreSQL, and its ordered migrations.

A database records which migrations it has had in ``schema_version`` (one row per step applied).
A new step is appended to :data:`MIGRATIONS`, never edited in place: a database made by an
older mlxbench is brought up to date step by step when it is next opened.
JSON documents (a record, an environment, a suite) are stored as text: the same on both engines.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (Column, Connection, Float, ForeignKeyConstraint, Integer, MetaData, String, Table, Text,
                        insert, select)

metadata = MetaData()

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", String(40), nullable=False),
)
# One row per run folder imported: where it came from and what it ran on. Every table's run_id is
# the run's key (results.db.run_key): its run id and a fingerprint of its suite and environment.
runs = Table(
    "runs", metadata,
    Column("run_id", Text, primary_key=True),
    Column("suite", Text, nullable=False, index=True),
    Column("run_dir", Text, nullable=False),
    Column("machine", Text, nullable=False),
    Column("env_id", String(64), nullable=False),
    Column("env_json", Text, nullable=False),
    Column("suite_json", Text, nullable=False),
)
# A run's metric declarations (results.metrics.Metric), as the run stored them.
declarations = Table(
    "declarations", metadata,
    Column("run_id", Text, primary_key=True),
    Column("metric", Text, primary_key=True),
    Column("position", Integer, nullable=False),
    Column("declaration_json", Text, nullable=False),
    ForeignKeyConstraint(["run_id"], ["runs.run_id"], ondelete="CASCADE"),
)
# The latest record of each case of a run, with what places it in a series.
records = Table(
    "records", metadata,
    Column("run_id", Text, primary_key=True),
    Column("case_id", Text, primary_key=True),
    Column("suite", Text, nullable=False, index=True),
    Column("variant", Text, nullable=False),
    Column("workload", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("case_label", Text, nullable=False),
    Column("machine", Text, nullable=False),
    Column("comparability_key", String(64), nullable=False, index=True),
    Column("context_json", Text, nullable=False),
    Column("info_json", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("order_key", Text, nullable=False),
    Column("started_at", String(40), nullable=False),
    Column("record_json", Text, nullable=False),
    ForeignKeyConstraint(["run_id"], ["runs.run_id"], ondelete="CASCADE"),
)
# Every figure of a record: its headline value, and each per-step sample (step ≥ 0) where it has them.
figures = Table(
    "figures", metadata,
    Column("run_id", Text, primary_key=True),
    Column("case_id", Text, primary_key=True),
    Column("metric", Text, primary_key=True),
    Column("step", Integer, primary_key=True),  # -1: the headline value (median or the figure itself)
    Column("value", Float(precision=53), nullable=False),
    ForeignKeyConstraint(["run_id", "case_id"], ["records.run_id", "records.case_id"], ondelete="CASCADE"),
)
# Children first: the order in which a run's rows are deleted before it is imported again.
RUN_TABLES = (figures, records, declarations, runs)


def _create_v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[runs, declarations, records, figures])


# (version, what it does, the step): applied in order, each once.
MIGRATIONS: tuple[tuple[int, str, Callable[[Connection], None]], ...] = (
    (1, "runs, declarations, records and figures", _create_v1),
)
LATEST = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    """The last migration step this database has had (0: a new database)."""
    schema_version.create(conn, checkfirst=True)
    return max((row.version for row in conn.execute(select(schema_version.c.version))), default=0)


def migrate(conn: Connection, now: str) -> list[int]:
    """Apply every step the database has not had, in order; the versions applied."""
    have = current_version(conn)
    applied = []
    for version, _what, step in MIGRATIONS:
        if version > have:
            step(conn)
            conn.execute(insert(schema_version).values(version=version, applied_at=now))
            applied.append(version)
    return applied
