"""The results database: every run folder's records, per-step samples, environment, suite and
declarations, in SQLite (``results/mlxbench.db``, nothing to set up) or a shared PostgreSQL server.

A run folder stays the crash-safe source of a run; the database is an index built from folders,
so importing a folder again changes nothing, and runs copied from another machine merge.
``series`` reads one metric of a suite back as points of history, grouped by comparability key
(``results.comparability``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import and_, create_engine, delete, exc, insert, select
from sqlalchemy.engine import make_url

from mlxbench.errors import UserError
from mlxbench.results import comparability as cmp
from mlxbench.results import db_schema as schema
from mlxbench.results.metrics import samples_of, value_of
from mlxbench.results.record import latest_by_case, sweep_title
from mlxbench.results.run import Run, load_run

DEFAULT_URL = "sqlite:///results/mlxbench.db"
HEADLINE = -1  # the figures table's step for a figure's headline value
# series(…, name=value): the records' columns a series may be narrowed by.
FILTERS = ("machine", "variant", "case_id", "workload", "comparability_key", "run_id")


@dataclass
class Point:
    """One point of a series: every sample of one case at one version (or commit) on one machine."""

    label: str  # the versions or commit it ran at
    order: str  # sorts points in history order
    machine: str
    key: str  # the comparability key: points with one key form one series
    samples: list[float]  # per-step samples pooled over rounds and runs; else one figure per record
    median: float
    run_dir: str  # the run folder of the latest record behind the point
    case_label: str  # the variant and sweep point, in words
    runs: list[str] = field(default_factory=list)


def default_url() -> str:
    """``MLXBENCH_DB``, else the SQLite file ``results/mlxbench.db``."""
    return os.environ.get("MLXBENCH_DB") or DEFAULT_URL


def run_url(out_root: str | Path) -> str:
    """Where ``mlxbench run --out OUT`` stores its runs: ``MLXBENCH_DB``, else ``OUT/mlxbench.db``
    (``results/mlxbench.db`` by default), so a run into a scratch folder never writes the shared one."""
    return os.environ.get("MLXBENCH_DB") or f"sqlite:///{Path(out_root) / 'mlxbench.db'}"


def connect(url: str | None = None) -> "Database":
    """Open (creating and migrating where needed) the database at ``url``; UserError in one line if it cannot."""
    url = url or default_url()
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise UserError(f"--db: expected a database URL (sqlite:///PATH or postgresql://USER@HOST/NAME), "
                        f"got {url!r}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not SQLAlchemy's default psycopg2
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(parsed)
        with engine.begin() as conn:
            have = schema.current_version(conn)
            if have > schema.LATEST:
                raise UserError(f"{_shown(parsed)}: expected a database of schema version ≤ {schema.LATEST}, "
                                f"got {have} (written by a newer mlxbench)")
            schema.migrate(conn, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    except ModuleNotFoundError as err:
        raise UserError(f"--db {_shown(parsed)}: needs the {err.name} package "
                        f"(pip install 'mlxbench[postgres]')") from None
    except exc.SQLAlchemyError as err:
        first = (str(err.orig if getattr(err, "orig", None) else err).strip().splitlines() or [""])[0]
        raise UserError(f"--db {_shown(parsed)}: cannot open the database: {first[:200]}") from None
    return Database(engine, _shown(parsed))


def index_run(run_dir: Path, url: str | None = None) -> str:
    """Store a run that just finished in the database; one line saying where, or why it could not.

    Never raises for the database's sake: the run folder is the result, the database an index that
    ``mlxbench db import`` can rebuild, so a server that is down costs a warning, not a run.
    """
    try:
        with connect(url) as database:
            count = database.import_run(Path(run_dir))
            return f"stored {count} record{'s' * (count != 1)} in {database.url}"
    except (UserError, exc.SQLAlchemyError, OSError) as err:
        return f"warning: not stored in the results database ({str(err).splitlines()[0][:200]}); " \
               f"mlxbench db import {run_dir} stores it later"


def _shown(url) -> str:
    return url.render_as_string(hide_password=True)


class Database:
    """An open results database."""

    def __init__(self, engine, url: str):
        self.engine = engine
        self.url = url

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def import_run(self, run_dir: Path) -> int:
        """Store one run folder (replacing what an earlier import of it stored); the records stored."""
        run = load_run(run_dir)
        rows = _run_rows(run)
        with self.engine.begin() as conn:
            for table in schema.RUN_TABLES:
                conn.execute(delete(table).where(table.c.run_id == run_key(run)))
            for table in reversed(schema.RUN_TABLES):
                if rows[table.name]:
                    conn.execute(insert(table), rows[table.name])
        return len(rows["records"])

    def series(self, suite: str, metric: str, **filters) -> list[Point]:
        """Every point of ``metric`` in ``suite``'s finished cases, in history order within each series."""
        unknown = sorted(set(filters) - set(FILTERS))
        if unknown:
            raise UserError(f"series: {unknown[0]}: expected a filter among {', '.join(FILTERS)}")
        r, f = schema.records, schema.figures
        where = [r.c.suite == suite, r.c.status == "ok", f.c.metric == metric,
                 *(r.c[name] == value for name, value in filters.items())]
        query = (select(r.c.run_id, r.c.case_id, r.c.machine, r.c.comparability_key, r.c.label, r.c.order_key,
                        r.c.case_label, schema.runs.c.run_dir, f.c.step, f.c.value)
                 .join(f, and_(f.c.run_id == r.c.run_id, f.c.case_id == r.c.case_id))
                 .join(schema.runs, schema.runs.c.run_id == r.c.run_id)
                 .where(*where)
                 .order_by(r.c.comparability_key, r.c.order_key, r.c.label, r.c.started_at, r.c.run_id,
                           r.c.case_id, f.c.step))
        with self.engine.connect() as conn:
            return _points(conn.execute(query).all())

    def record_figures(self, suite: str, metrics: tuple[str, ...]) -> list[dict]:
        """Each finished record of ``suite`` with any of ``metrics``: its machine, case, point label and
        order, run, environment and headline figures ({name: value}), by machine in history order."""
        r, f, runs = schema.records, schema.figures, schema.runs
        query = (select(r.c.run_id, r.c.case_id, r.c.machine, r.c.case_label, r.c.label, r.c.order_key, f.c.metric,
                        f.c.value, runs.c.env_json)
                 .join(f, and_(f.c.run_id == r.c.run_id, f.c.case_id == r.c.case_id))
                 .join(runs, runs.c.run_id == r.c.run_id)
                 .where(r.c.suite == suite, r.c.status == "ok", f.c.step == HEADLINE, f.c.metric.in_(metrics))
                 .order_by(r.c.machine, r.c.order_key, r.c.run_id, r.c.case_id, f.c.metric))
        out: dict[tuple[str, str], dict] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                entry = out.setdefault((row.run_id, row.case_id), {
                    "machine": row.machine, "case_label": row.case_label, "label": row.label,
                    "order": row.order_key, "run_id": row.run_id, "env": json.loads(row.env_json), "figures": {}})
                entry["figures"][row.metric] = row.value
        return list(out.values())

    def suites(self) -> list[str]:
        """The suites the database holds runs of."""
        with self.engine.connect() as conn:
            return sorted({row.suite for row in conn.execute(select(schema.runs.c.suite))})

    def environments(self, suite: str) -> dict[str, dict]:
        """Each run of ``suite``: its run id → its environment (env.json as imported)."""
        query = select(schema.runs.c.run_id, schema.runs.c.env_json).where(schema.runs.c.suite == suite)
        with self.engine.connect() as conn:
            return {row.run_id: json.loads(row.env_json) for row in conn.execute(query.order_by("run_id"))}

    def declarations(self, suite: str) -> dict[str, dict]:
        """Every metric declared by the suite's runs: name → declaration (the latest run's, by run id)."""
        d = schema.declarations
        query = (select(d.c.metric, d.c.declaration_json).join(schema.runs, schema.runs.c.run_id == d.c.run_id)
                 .where(schema.runs.c.suite == suite).order_by(d.c.run_id, d.c.position))
        with self.engine.connect() as conn:
            return {row.metric: json.loads(row.declaration_json) for row in conn.execute(query)}


def _points(rows) -> list[Point]:
    """Rows (ordered by key, order, label) grouped into one Point per (key, label)."""
    groups: dict[tuple[str, str], dict] = {}
    for row in rows:
        group = groups.setdefault((row.comparability_key, row.label), {
            "row": row, "samples": [], "headlines": [], "runs": []})
        group["row"] = row  # the latest record's folder and names stand for the point
        if row.run_id not in group["runs"]:
            group["runs"].append(row.run_id)
        (group["headlines"] if row.step == HEADLINE else group["samples"]).append(row.value)
    points = []
    for (key, label), group in groups.items():
        samples = group["samples"] or group["headlines"]
        row = group["row"]
        points.append(Point(label=label, order=row.order_key, machine=row.machine, key=key, samples=samples,
                            median=float(np.median(samples)), run_dir=row.run_dir, case_label=row.case_label,
                            runs=group["runs"]))
    return points


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, default=str, allow_nan=False)


def run_key(run: Run) -> str:
    """The run's identity in the database: its run id, and a fingerprint of its suite and of when and
    where its environment was captured. A folder copied elsewhere keeps it (importing the copy
    changes nothing); two histories whose folders share a name ('000-mlx==0.29.4') do not."""
    env = run.env
    where = json.dumps([run.name, env.get("captured_at"), env.get("hostname"), env.get("env_id")], default=str)
    return f"{run.run_id}@{hashlib.sha256(where.encode()).hexdigest()[:8]}"


def _run_rows(run: Run) -> dict[str, list[dict]]:
    """Every row one run folder puts in the database, by table name."""
    env, run_id = run.env, run_key(run)
    out: dict[str, list[dict]] = {"runs": [{
        "run_id": run_id, "suite": run.name, "run_dir": str(Path(run.path).resolve()),
        "machine": cmp.machine_of(env), "env_id": str(env.get("env_id") or ""), "env_json": _json(env),
        "suite_json": _json(run.suite)}]}
    out["declarations"] = [{"run_id": run_id, "metric": name, "position": i, "declaration_json": _json(m.to_dict())}
                           for i, (name, m) in enumerate(run.metrics.items())]
    out["records"], out["figures"] = [], []
    for record in latest_by_case(run.records):
        context = cmp.context(record, env)
        out["records"].append({
            "run_id": run_id, "case_id": record.case_id, "suite": record.suite, "variant": record.variant,
            "workload": record.workload, "status": record.status,
            "case_label": " · ".join(p for p in (record.variant, sweep_title(_without_round(record.sweep))) if p),
            "machine": cmp.machine_of(env), "comparability_key": cmp.key_of(context),
            "context_json": _json(context), "info_json": _json(cmp.info(record, env)),
            "label": cmp.label(record, env), "order_key": cmp.order_key(record, env),
            "started_at": record.started_at or "", "record_json": record.to_json()})
        out["figures"] += _figure_rows(run_id, record.case_id, record.metrics)
    return out


def _without_round(sweep: dict) -> dict:
    return {k: v for k, v in (sweep or {}).items() if k not in cmp.ROUND_KEYS}


def _figure_rows(run_id: str, case_id: str, metrics: dict) -> list[dict]:
    """The headline value and the per-step samples of every numeric figure of a record."""
    rows = []
    for name, figure in metrics.items():
        headline = value_of(figure)
        if headline is None:
            continue
        rows.append({"run_id": run_id, "case_id": case_id, "metric": name, "step": HEADLINE, "value": headline})
        for step, sample in enumerate(samples_of(figure) or []):
            if value_of(sample) is not None:
                rows.append({"run_id": run_id, "case_id": case_id, "metric": name, "step": step,
                             "value": float(sample)})
    return rows
