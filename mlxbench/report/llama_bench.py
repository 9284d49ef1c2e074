"""A run in llama-bench's output formats: its markdown table, JSON, JSON lines, CSV and SQL.

llama-bench (llama.cpp's tools/llama-bench) is what generation speeds are compared in. A
case is one of its tests when its record has llama-bench's test figures (``n_prompt``,
``n_gen``, ``n_depth``) and the timing of the test's own span (``test_s``, one sample per
timed step); its t/s samples are the tokens of the test over each sample, for all
``n_seq`` sequences together. Every row carries llama-bench's field names where one
exists (``model_type``, ``model_size``, ``model_n_params``, ``n_prompt``, ``n_gen``,
``n_depth``, ``avg_ts``, ``stddev_ts``, ``samples_ts``, …) and then mlxbench's own: the
case's identity and every figure, as ``--format csv`` has always written them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import PurePath

from mlxbench.errors import UserError
from mlxbench.report.text import flat_rows, markdown_escaped
from mlxbench.results.metrics import samples_of, value_of
from mlxbench.results.record import latest_by_case
from mlxbench.stats import mean_and_stdev

# llama-bench's fields, in its order (its README's CSV header and JSON); samples only in JSON.
FIELDS = ("build_commit", "build_number", "cpu_info", "gpu_info", "backends", "model_filename", "model_type",
          "model_size", "model_n_params", "n_batch", "n_ubatch", "n_threads", "type_k", "type_v",
          "n_prompt", "n_gen", "n_depth", "test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts")
SAMPLE_FIELDS = ("samples_ns", "samples_ts")
MARKDOWN = (("model", "<"), ("size", ">"), ("params", ">"), ("backend", "<"), ("threads", ">"),
            ("test", ">"), ("t/s", ">"))


def name_of_test(n_prompt: int, n_gen: int, n_depth: int) -> str:
    """llama-bench's name of a test: pp512, tg128, pp512+tg128, with ' @ d4096' at a depth."""
    parts = ([f"pp{n_prompt}"] if n_prompt else []) + ([f"tg{n_gen}"] if n_gen else [])
    return "+".join(parts) + (f" @ d{n_depth}" if n_depth else "")


def _int(figure) -> int | None:
    value = value_of(figure)
    return None if value is None else int(value)


def _timing(record) -> tuple[list[float], list[float] | None]:
    """Nanoseconds of each timed sample of the test (else of the step), and its t/s where a test."""
    m = record.metrics
    samples = samples_of(m.get("test_s")) or samples_of(m.get("step_time_s")) or []
    samples = [s for s in samples if value_of(s) and s > 0]  # a hand-edited record may hold anything
    n_prompt, n_gen = _int(m.get("n_prompt")), _int(m.get("n_gen"))
    if not samples or n_prompt is None or n_gen is None or "test_s" not in m:
        return [s * 1e9 for s in samples], None
    tokens = (_int(m.get("n_seq")) or 1) * (n_prompt + n_gen)
    return [s * 1e9 for s in samples], [tokens / s for s in samples]


def _model(record, fields: dict) -> dict:
    """llama-bench's model fields, from the parameters the workload's ``llama_bench`` section names."""
    params, m = record.params, record.metrics

    def param(field: str):
        return params.get(fields[field]) if field in fields else None

    name = PurePath(str(param("model_file") or "")).name or "model"
    n_params = _int(m.get("model_n_params") or m.get("total_params"))
    bits = param("weight_bits")
    ftype = f"Q{bits}" if bits else str(param("weight_dtype") or "").upper().replace("FLOAT", "F")
    kv = param("cache_bits")
    kv_type = f"q{kv}" if kv else {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}.get(param("weight_dtype"))
    return {
        "model_filename": str(param("model_file") or "") or None,
        "model_type": " ".join(x for x in (name, _params_text(n_params).replace(" ", ""), ftype) if x),
        "model_size": _int(m.get("model_size_bytes")),
        "model_n_params": n_params,
        "n_batch": param("n_batch"),
        "n_ubatch": param("n_batch"),
        "type_k": kv_type,
        "type_v": kv_type,
    }


def row(record, env: dict, fields: dict | None = None) -> dict:
    """llama-bench's fields of one record (None where it has none); ``fields``: the run's ``llama_bench``
    section, which parameter gives each field (``Run.sections``)."""
    mlx, blas, cpu = env.get("mlx") or {}, env.get("blas") or {}, env.get("cpu") or {}
    ns, ts = _timing(record)
    m = record.metrics
    out = {
        "build_commit": (env.get("mlxbench") or {}).get("git_sha"),
        "build_number": None,
        "cpu_info": cpu.get("name"),
        "gpu_info": (mlx.get("device_info") or {}).get("device_name") if mlx.get("device") == "gpu" else "",
        "backends": f"MLX {mlx.get('backend', '?')}",
        **_model(record, fields or {}),
        "n_threads": blas.get("threads") or cpu.get("logical_cores"),
        "n_prompt": _int(m.get("n_prompt")),
        "n_gen": _int(m.get("n_gen")),
        "n_depth": _int(m.get("n_depth")),
        "test_time": record.started_at or None,
        "avg_ns": None, "stddev_ns": None, "avg_ts": None, "stddev_ts": None,
        "samples_ns": [round(v) for v in ns], "samples_ts": ts or [],
    }
    if ns:
        avg, sd = mean_and_stdev(ns)
        out.update(avg_ns=round(avg), stddev_ns=round(sd))
    if ts:
        out.update(zip(("avg_ts", "stddev_ts"), mean_and_stdev(ts)))
    return out


def rows(run) -> tuple[list[str], list[dict]]:
    """Columns and one row per case: llama-bench's fields, then mlxbench's own."""
    columns, ours = flat_rows(run)
    section = next(iter(run.sections("llama_bench")), {})
    shown = list(section.get("columns", ()))  # parameters shown beside the test's name
    # A sweep axis named as one of llama-bench's columns (a generate suite sweeping `test`) keeps its
    # values under param_<axis>, so no column is written twice and no value overwritten.
    taken = set(FIELDS + SAMPLE_FIELDS) | {"test", *shown}  # llama-bench's test name, the section's parameters
    axes = {k for r in run.records for k in r.sweep if k in taken}
    columns = [f"param_{c}" if c in axes else c for c in columns]
    ours = [{f"param_{k}" if k in axes else k: v for k, v in flat.items()} for flat in ours]
    by_case = {r.case_id: r for r in latest_by_case(run.records)}
    out = []
    for flat in ours:
        record = by_case[flat["case_id"]]
        theirs = row(record, run.env, section)
        if theirs["n_prompt"] is not None and theirs["n_gen"] is not None:
            flat = {**flat, "test": name_of_test(theirs["n_prompt"], theirs["n_gen"], theirs["n_depth"] or 0),
                    **{c: record.params.get(c) for c in shown}}
        merged = {**theirs, **{k: v for k, v in flat.items() if k not in theirs}}
        # JSON and SQL have no infinity or NaN: a figure past a float's range is unknown.
        out.append({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in merged.items()})
    extra = [c for c in ("test", *shown) if any(c in r for r in out)]
    return list(dict.fromkeys([*FIELDS, *SAMPLE_FIELDS, *extra, *columns])), out


def to_json(run) -> str:
    columns, data = rows(run)
    return json.dumps([{c: r.get(c) for c in columns} for r in data], indent=2) + "\n"


def to_jsonl(run) -> str:
    columns, data = rows(run)
    return "".join(json.dumps({c: r.get(c) for c in columns}) + "\n" for r in data)


def to_csv(run) -> str:
    columns, data = rows(run)
    flat = [c for c in columns if c not in SAMPLE_FIELDS]  # as llama-bench: samples only in JSON
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=flat, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(data)
    return out.getvalue()


def _sql_type(values) -> str:
    kinds = {type(v) for v in values if v is not None}
    if kinds and kinds <= {int, bool}:
        return "INTEGER"
    if kinds and kinds <= {int, float, bool}:
        return "REAL"
    return "TEXT"


def _sql_value(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    # SQLite ends a string literal's text at NUL: spell it (and its kin) as char(n), so no row is cut short.
    parts = re.split(r"([\x00-\x08\x0b\x0c\x0e-\x1f])", str(value))
    return " || ".join(f"char({ord(p)})" if i % 2 else "'" + p.replace("'", "''") + "'"
                       for i, p in enumerate(parts) if p or i == 0)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def to_sql(run) -> str:
    """llama-bench's SQL: a ``test`` table and one INSERT per case, for SQLite."""
    columns, data = rows(run)
    flat = [c for c in columns if c not in SAMPLE_FIELDS]
    lines = ["CREATE TABLE IF NOT EXISTS test ("]
    lines += [f"  {_ident(c)} {_sql_type(r.get(c) for r in data)}{',' if i < len(flat) - 1 else ''}"
              for i, c in enumerate(flat)]
    lines += [");", ""]
    names = ", ".join(map(_ident, flat))
    lines += [f"INSERT INTO test ({names}) VALUES ({', '.join(_sql_value(r.get(c)) for c in flat)});"
              for r in data]
    return "\n".join(lines) + "\n"


def _size_text(size: int | None) -> str:
    if size is None:
        return "?"
    return f"{size / 2**20:.2f} MiB" if size < 2**30 else f"{size / 2**30:.2f} GiB"


def _params_text(n: int | None) -> str:
    if n is None:
        return ""
    return f"{n / 1e6:.2f} M" if n < 1e9 else f"{n / 1e9:.2f} B"


def to_markdown(run) -> str:
    """llama-bench's markdown table of the run's tests (ok cases with t/s samples)."""
    _, data = rows(run)
    tests = [r for r in data if r["status"] == "ok" and r["avg_ts"] is not None]
    if not tests:
        raise UserError(f"{run.path}: expected cases with llama-bench's test figures (n_prompt, n_gen, n_depth "
                        f"and test_s samples: a generation workload's), got none")
    columns = list(MARKDOWN)
    if any((r.get("n_seq") or 1) > 1 for r in tests):
        columns.insert(5, ("n_seq", ">"))
    if len({r["type_k"] for r in tests}) > 1:
        columns.insert(5, ("type_k", "<"))
    cells = [[_markdown_cell(c, r) for c, _ in columns] for r in tests]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, (c, _) in enumerate(columns)]
    def line(values):
        return "| " + " | ".join(f"{v:{a}{w}}" for v, (_, a), w in zip(values, columns, widths)) + " |"
    rule = "| " + " | ".join(("-" * (w - 1) + ":") if a == ">" else "-" * w for (_, a), w in zip(columns, widths)) + " |"
    out = [line([c for c, _ in columns]), rule, *map(line, cells), ""]
    failed = sum(r["status"] != "ok" for r in data)
    if any((r.get("n_seq") or 1) > 1 for r in tests):
        out.append("t/s: tokens per second of all n_seq sequences together")
    if failed:
        out.append(f"not shown: {failed} failed case{'s' if failed != 1 else ''} (mlxbench report --format md lists them)")
    out.append(f"build: {tests[0]['build_commit'] or 'unknown'} (mlxbench)")
    return "\n".join(out) + "\n"


def _markdown_cell(column: str, r: dict) -> str:
    if column == "model":
        return markdown_escaped(r["model_type"])
    if column == "size":
        return _size_text(r["model_size"])
    if column == "params":
        return _params_text(r["model_n_params"]) or "?"
    if column == "backend":
        return r["backends"]
    if column == "threads":
        return str(r["n_threads"])
    if column == "t/s":
        return f"{r['avg_ts']:.2f} ± {r['stddev_ts']:.2f}"
    return markdown_escaped(str(r.get(column)))
