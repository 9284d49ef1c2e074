"""The record of one case: the one type the runner, the pytest-benchmark importer and the tests build.

A record is one JSON line of ``records.jsonl``. Records written before the type had
a schema version (version 1) load as the current version: the same fields, none missing
(version 3 added ``memory``, version 4 ``round`` and ``rounds``, null in older records).
Written records are strict JSON: a figure that is not a finite number is stored as
null and named in ``non_finite``.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 4  # 3: ``memory``, what the OS counted; 4: ``round`` and ``rounds`` (results.rounds)
STATUSES = ("ok", "error", "oom", "timeout", "skipped")
# What a case's own run fills in (the worker, or the runner for a worker that died).
OUTCOME_FIELDS = ("status", "error", "metrics", "memory_timeline", "leak", "equivalence_values",
                  "started_at", "duration_s", "distributed", "memory")


class RecordError(ValueError):
    """A line that is not a record of any version mlxbench wrote."""


@dataclass
class Record:
    suite: str
    case_id: str
    variant: str
    workload: str
    run_id: str = ""
    sweep: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    seed: int | None = None
    warmup: int = 0
    repeat: int = 0
    status: str = "ok"
    error: dict | None = None  # {"message": one line, "traceback": the last lines}
    metrics: dict = field(default_factory=dict)  # name → number, or a timing summary (stats.summarize)
    memory_timeline: dict | None = None
    leak: dict | None = None
    # What the OS counted: {"process", "system", "divergence", "unavailable"} (machine.memory_truth)
    memory: dict | None = None
    equivalence_values: dict | None = None  # first-step figures equivalent variants must reproduce
    equivalence: dict | None = None  # the verdict against the baseline, where one applies
    is_baseline: bool = False
    inline: bool = False
    env_id: str = ""
    started_at: str = ""
    duration_s: float | None = None
    non_finite: list = field(default_factory=list)  # figures stored as null: they were NaN or infinite
    # A case of several ranks: backend, group size, hosts, and each rank's own figures (None: one process).
    distributed: dict | None = None
    # The peak memory estimated before the case ran (mlxbench.estimate): {"peak_bytes", "parts",
    # "calibrated", "basis", …}, or {"peak_bytes": null, "reason"}; None in records written before it.
    estimate: dict | None = None
    # Interleaved rounds (results.rounds): a round's record has ``round`` (1-based) and {"of": N}; the
    # pooled record of its case has ``round`` None and each figure's round values. None without rounds.
    round: int | None = None
    rounds: dict | None = None
    schema: int = SCHEMA_VERSION

    def __post_init__(self):
        self.metrics = self.metrics or {}  # a failed case has no figures: an empty mapping, never null

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def reason(self) -> str:
        """The one-line reason a case failed: the last line of its error message."""
        message = ((self.error or {}).get("message") or "").strip()
        return message.splitlines()[-1] if message else ""

    @property
    def point(self) -> str:
        """The sweep point in words: 'seq_length = 512 · batch_size = 8', or ''."""
        return sweep_title(self.sweep)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["metrics"], dropped = _finite(data["metrics"])
        data["non_finite"] = sorted(set(self.non_finite) | set(dropped))
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False, default=_plain)

    @classmethod
    def from_dict(cls, data: Any) -> "Record":
        """A record of this or an earlier version; RecordError if ``data`` is none."""
        if not isinstance(data, dict):
            raise RecordError(f"expected a JSON object, got {type(data).__name__}")
        version = data.get("schema", 1)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise RecordError(f"expected schema version ≤ {SCHEMA_VERSION}, got {version!r}")
        missing = [k for k in ("suite", "case_id", "variant") if not isinstance(data.get(k), str)]
        if missing:
            raise RecordError(f"expected {', '.join(missing)} (strings), got {'none' if len(missing) == 3 else 'none for some'}")
        known = {f.name for f in fields(cls)}
        values = {k: _float_sized(v) for k, v in data.items() if k in known}
        values["metrics"] = values.get("metrics") or {}  # version 1 wrote null for a failed case
        values["sweep"] = values.get("sweep") or {}
        values["params"] = values.get("params") or {}
        values.setdefault("workload", "")
        if values.get("status") not in STATUSES:
            raise RecordError(f"status: expected one of {', '.join(STATUSES)}, got {values.get('status')!r}")
        if not isinstance(values["metrics"], dict):
            raise RecordError(f"metrics: expected a mapping, got {type(values['metrics']).__name__}")
        values["schema"] = SCHEMA_VERSION
        return cls(**values)


def blank_outcome(started_at: str) -> dict:
    """The outcome fields of a case before anything is known: ok, no figures, no error yet.

    The worker fills it in; the runner fills one in for a worker that died without one.
    """
    defaults = {f.name: f.default_factory() if callable(f.default_factory) else f.default
                for f in fields(Record) if f.name in OUTCOME_FIELDS}
    return {**defaults, "started_at": started_at}


def sweep_title(sweep: dict) -> str:
    """'seq_length = 512 · batch_size = 8', or '' without a sweep."""
    return " · ".join(f"{k} = {v}" for k, v in sweep.items())


def latest_by_case(records: list[Record]) -> list[Record]:
    """One record per case, the last one written, in the order cases first appeared.

    A case re-run on ``--resume`` appends a new line; its latest line is its result.
    """
    return list({r.case_id: r for r in records}.values())


def _finite(value, path: str = "") -> tuple[Any, list[str]]:
    """``value`` with every non-finite float replaced by None, and where they were."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, [path or "value"]
    if isinstance(value, dict):
        out, dropped = {}, []
        for k, v in value.items():
            out[k], more = _finite(v, f"{path}.{k}" if path else str(k))
            dropped += more
        return out, dropped
    if isinstance(value, list):
        pairs = [_finite(v, path) for v in value]
        return [v for v, _ in pairs], sorted({d for _, more in pairs for d in more})
    return value, []


def _float_sized(value):
    """``value`` with every integer beyond a float's range as ±inf: every reader computes in floats."""
    if isinstance(value, int) and abs(value) > sys.float_info.max:
        return math.inf if value > 0 else -math.inf
    if isinstance(value, dict):
        return {k: _float_sized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_float_sized(v) for v in value]
    return value


def _plain(value):
    """numpy / MLX scalars as plain numbers; anything else as its text."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)
