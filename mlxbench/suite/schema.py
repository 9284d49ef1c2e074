"""Suites: load a YAML suite, validate all of it, expand it into cases.

A case is one variant at one sweep point. Its id is a hash of what it computes
(suite name, workload, resolved parameters, seed), so the same case has the same
id in every run and ``--resume`` can tell what is already done.

Every mistake in a suite is found here, before anything runs, and reported as
one line: ``suites/x.yaml:12: variants."GC only".micro_batch_size: expected a
positive integer, got 'four'``.

The fields a suite file may have are :data:`FIELDS`, each with its help text. A
profile (``--profile quick``) replaces top-level fields and merges ``defaults`` key
by key; ``--set key=value`` then overrides a field of SET_FIELDS
or one workload parameter of every variant (pinning a sweep axis to that value).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlxbench import options
from mlxbench.errors import UserError
from mlxbench.machine import os_memory
from mlxbench.suite.limits import anchor_hostfiles, check_count
from mlxbench.suite.case import Case, case_id, case_of  # noqa: F401  (where readers have found them)
from mlxbench.suite.lookup import workload_class  # noqa: F401  (where suites' readers have always found it)
from mlxbench.suite.source import KeyPath, Source, did_you_mean, format_path, parse_yaml, read  # noqa: F401
from mlxbench.workloads.base import Param, Workload

# The fields of a suite file, checked like workload parameters.
FIELDS = {p.name: p for p in (
    Param("name", str, help="the suite's name; results go to results/<name>/"),
    Param("description", str, "", help="one line on what the suite answers"),
    Param("workload", str, help="a workload name (train, generate, …) or 'module:Class'"),
    Param("baseline", str, None, nullable=True, help="the variant others are compared with (default: the first)"),
    Param("warmup", int, 1, minimum=0, maximum=options.MAX_STEPS, help="untimed steps per case"),
    Param("repeat", int, 5, minimum=1, maximum=options.MAX_STEPS, help="timed steps per case"),
    Param("timeout", float, 600.0, minimum=0, maximum=options.MAX_SECONDS,
          help="seconds per case before it is stopped and recorded as timeout"),
    Param("seed", int, 0, help="random seed of every case"),
    Param("rounds", int, 1, minimum=1, maximum=options.MAX_ROUNDS,
          help="interleaved rounds: each case in this many separate processes, round 1 of every case first "
               "(mlxbench run --rounds)"),
    Param("memory_limit_mb", int, None, nullable=True, minimum=1,
          help="in MB (10⁶ bytes): a case whose process resident memory passes this is stopped and recorded as oom"),
    Param("swap_limit_mb", int, os_memory.DEFAULT_SWAP_LIMIT_MB, nullable=True, minimum=0,
          help="in MB (10⁶ bytes): a case during which the machine's swap grows by more than this is stopped "
               "as oom (null: never)"),
    Param("pressure_limit", str, os_memory.DEFAULT_PRESSURE_LIMIT, nullable=True, choices=os_memory.PRESSURE_NAMES,
          help="a case during which memory pressure reaches this level is stopped as oom (null: never)"),
    Param("defaults", dict, None, nullable=True, help="workload parameters shared by every variant"),
    Param("variants", dict, None, nullable=True, help="named parameter overrides, in report order"),
    Param("sweep", dict, None, nullable=True, help="axes whose cartesian product applies to every variant"),
    Param("profiles", dict, None, nullable=True, help="named sets of field overrides, picked with --profile"),
    Param("max_cases", int, 10_000, minimum=1,
          help="the most cases the suite may expand to (counted before any is built); raise it for a larger sweep"),
)}
REQUIRED = ("name", "workload")
PROFILE_FIELDS = tuple(k for k in FIELDS if k not in ("name", "workload", "profiles"))
SET_FIELDS = ("warmup", "repeat", "timeout", "seed", "memory_limit_mb", "swap_limit_mb", "pressure_limit",
              "max_cases")
NO_PROFILE = "full"  # --profile full: the suite as written
AUTO_PROFILE = "auto"  # --profile auto: 'quick' on a CPU-only MLX, else the suite as written
DEFAULT_VARIANT = "default"

@dataclass
class Suite:
    """A validated suite with its profile and --set overrides applied."""

    name: str
    workload: str
    workload_cls: type[Workload]
    baseline: str
    description: str = ""
    warmup: int = 1
    repeat: int = 5
    timeout: float = 600.0
    seed: int = 0
    rounds: int = 1
    memory_limit_mb: int | None = None
    swap_limit_mb: int | None = FIELDS["swap_limit_mb"].default
    pressure_limit: str | None = FIELDS["pressure_limit"].default
    defaults: dict = field(default_factory=dict)
    variants: dict = field(default_factory=dict)
    sweep: dict = field(default_factory=dict)
    profile: str | None = None
    path: str = ""
    profiles: tuple[str, ...] = ()
    only: tuple[str, ...] = ()  # --only: run just these variants (the rest stay in the suite)

    def to_dict(self) -> dict:
        """The resolved suite as stored with a run (``suite.yaml``)."""
        keys = ("name", "description", "workload", "baseline", "warmup", "repeat", "timeout", "seed", "rounds",
                "memory_limit_mb", "swap_limit_mb", "pressure_limit", "defaults", "variants", "sweep", "profile")
        return {**{k: getattr(self, k) for k in keys}, "only": list(self.only) or None, "source": self.path}


def expand(suite: Suite) -> list[Case]:
    """Every case of the suite (of the ``only`` variants, if given): variants in suite order,
    each at every sweep point (suite.case.case_of, the one way a case is made: ``fit`` uses it too)."""
    axes = list(suite.sweep)
    points = [dict(zip(axes, values)) for values in itertools.product(*suite.sweep.values())]
    return [case_of(suite, variant, {**overrides, **point}, point)
            for variant, overrides in suite.variants.items() if not suite.only or variant in suite.only
            for point in points]


def _check_fields(values: dict, allowed: tuple[str, ...], prefix: KeyPath, source: Source, what: str) -> None:
    for key, value in values.items():
        if key not in allowed:
            hint = did_you_mean(key, allowed) or f"; expected one of {', '.join(allowed)}"
            raise source.error(prefix + (key,), f"unknown {what}{hint}")
        if (problem := _field_problem(key, value)) is not None:
            raise source.error(prefix + (key,), problem)


def _field_problem(key: str, value: Any) -> str | None:
    """What is wrong with a suite field's value, from the file, a profile or --set alike; None if nothing."""
    rule = FIELDS[key]  # a mapping's values are checked each where it is written: its line, its rule
    if (problem := rule.check(value) if rule.type is dict else _problem(rule, value)) is not None:
        return problem
    if key == "timeout" and value <= 0:
        return f"expected a number of seconds > 0, got {value!r}"
    if key in ("name", "workload") and not str(value).strip():
        return "expected a non-empty string, got ''"
    # The name is a folder under --out: one path component, never '.' or '..'.
    if key == "name" and not re.fullmatch(r"[\w+-][\w.+-]*", value):
        return (f"expected a name of letters, digits, '.', '_', '+' or '-', not starting with '.' "
                f"(it names the results directory), got {value!r}")
    return None


def _problem(rule: Param, value: Any) -> str | None:
    """``rule.check(value)``, and no NaN or infinity anywhere in the value (``.nan`` passes every ``<``)."""
    try:
        json.dumps(value, allow_nan=False, skipkeys=True, default=str)
    except ValueError:
        return rule.check(value) or f"expected finite numbers, got {value!r}"
    return rule.check(value)


def _pick_profile(name: str | None, profiles: dict, source: Source) -> str | None:
    if name in (None, NO_PROFILE):
        return None
    if name == AUTO_PROFILE:
        import mlx.core as mx

        return "quick" if "quick" in profiles and mx.default_device().type == mx.cpu else None
    if name not in profiles:
        choices = ", ".join([*profiles, NO_PROFILE, AUTO_PROFILE])
        raise UserError(f"{source.path}: --profile: expected one of {choices}, got {name!r}"
                        f"{did_you_mean(name, [*profiles, NO_PROFILE, AUTO_PROFILE])}")
    return name


def parse_set(item: str, source: Source) -> tuple[str, Any]:
    """``key=value`` from --set, the value read as YAML (``4``, ``true``, ``{rank: 8}``)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"{source.path}: --set {item}: expected key=value, got {item!r}")
    return key.strip(), parse_yaml(text, f"{source.path}: --set {key.strip()}", lines=False)[0]


@dataclass
class _Layers:
    """The suite's fields after profile and --set, and where each value came from, so an
    error points at the line (or the --set) that gave it."""

    fields: dict
    origin: dict[str, KeyPath]
    defaults: dict
    default_origin: dict[str, KeyPath]

    def at(self, key: str) -> KeyPath:
        return self.origin.get(key, (key,))


def _layers(raw: dict, profile: str | None) -> _Layers:
    """The file's fields with ``profile``'s overrides on top; its defaults merged key by key."""
    fields = {k: v for k, v in raw.items() if k not in ("defaults", "profiles")}
    defaults = dict(raw.get("defaults") or {})
    layers = _Layers(fields, {k: (k,) for k in fields}, defaults, {k: ("defaults", k) for k in defaults})
    if profile is not None:
        for key, value in raw["profiles"][profile].items():
            if key == "defaults":
                layers.defaults.update(value or {})
                layers.default_origin.update({k: ("profiles", profile, "defaults", k) for k in value or {}})
            else:
                layers.fields[key], layers.origin[key] = value, ("profiles", profile, key)
    return layers


def _apply_sets(layers: _Layers, sets: list[str], cls: type[Workload], source: Source) -> None:
    """``--set key=value``: a suite field, or a parameter of every variant (a sweep axis: its one value)."""
    params = {p.name: p for p in cls.params}
    for item in sets:
        key, value = parse_set(item, source)
        at = (f"--set {key}",)
        if key not in SET_FIELDS and key not in params:
            raise source.error(at, f"expected a suite field ({', '.join(SET_FIELDS)}) or a parameter of "
                                   f"workload {cls.name!r}, got {key!r}{did_you_mean(key, [*SET_FIELDS, *params])}")
        if (problem := _field_problem(key, value) if key in SET_FIELDS else _problem(params[key], value)) is not None:
            raise source.error(at, problem)
        if key in SET_FIELDS:
            layers.fields[key], layers.origin[key] = value, at
        elif key in (layers.fields.get("sweep") or {}):
            layers.fields["sweep"] = {**layers.fields["sweep"], key: [value]}
        else:
            layers.defaults[key], layers.default_origin[key] = value, at


def _variants(layers: _Layers, source: Source) -> tuple[dict[str, dict], str]:
    """The variants as {name: overrides}, in suite order, and the baseline's name."""
    variants = layers.fields.get("variants")
    variants = {DEFAULT_VARIANT: {}} if variants is None else {str(k): v for k, v in variants.items()}
    if not variants:
        raise source.error(layers.at("variants"), "expected at least one variant, got none")
    for name, overrides in variants.items():
        if any(ord(c) < 32 or ord(c) == 127 for c in name):  # a label on one line of every table and export
            raise source.error(layers.at("variants") + (name,), f"expected a variant name without control "
                                                                f"characters, got {name!r}")
        if overrides is not None and not isinstance(overrides, dict):
            raise source.error(layers.at("variants") + (name,), f"expected a mapping of parameters, got {overrides!r}")
    baseline = layers.fields.get("baseline") or next(iter(variants))
    if baseline not in variants:
        raise source.error(layers.at("baseline"), f"expected the name of a variant ({', '.join(map(repr, variants))}), "
                                                  f"got {baseline!r}{did_you_mean(baseline, variants)}")
    return {name: dict(overrides or {}) for name, overrides in variants.items()}, baseline


def _check_params(layers: _Layers, variants: dict, sweep: dict, cls: type[Workload], source: Source) -> None:
    """Every parameter the suite sets is one the workload declares, with a value of its type."""
    params = {p.name: p for p in cls.params}

    def check(key: str, value: Any, at: KeyPath) -> None:
        if key not in params:
            hint = did_you_mean(key, params) or f"; expected one of {', '.join(params)}"
            raise source.error(at, f"unknown parameter of workload {cls.name!r}{hint}")
        if (problem := _problem(params[key], value)) is not None:
            raise source.error(at, problem)

    for key, value in layers.defaults.items():
        check(key, value, layers.default_origin[key])
    for name, overrides in variants.items():
        for key, value in overrides.items():
            check(key, value, layers.at("variants") + (name, key))
            if key in sweep:
                raise source.error(layers.at("variants") + (name, key), "is also a sweep axis, which would "
                                   "override this value; expected it in only one of the two")
    for axis, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise source.error(layers.at("sweep") + (axis,), f"expected a non-empty list of values, got {values!r}")
        for index, value in enumerate(values):
            check(axis, value, layers.at("sweep") + (axis, index))
            if values.index(value) != index:
                raise source.error(layers.at("sweep") + (axis, index), f"expected distinct values, got {value!r} twice")


def load(path: str | Path, profile: str | None = None, sets: list[str] = (), only: list[str] = ()) -> Suite:
    """Read and validate a suite, apply a profile and ``--set`` overrides; UserError on any mistake."""
    raw, source = read(path)
    _check_fields(raw, tuple(FIELDS), (), source, "suite field")
    for key in REQUIRED:
        if key not in raw:
            raise source.error((), f"expected a {key!r} field ({FIELDS[key].help}), got none")
    profiles = raw.get("profiles") or {}
    for name, overrides in profiles.items():
        if not isinstance(overrides, dict):
            raise source.error(("profiles", name), f"expected a mapping of overrides, got {overrides!r}")
        _check_fields(overrides, PROFILE_FIELDS, ("profiles", name), source, "field a profile can set")
    chosen = _pick_profile(profile, profiles, source)
    layers = _layers(raw, chosen)
    anchor_hostfiles(layers.defaults, layers.fields, Path(path).resolve().parent)
    try:
        cls = workload_class(raw["workload"], (str(Path(path).resolve().parent),), probe=True)
    except LookupError as err:
        raise source.error(("workload",), str(err)) from None
    _apply_sets(layers, sets, cls, source)
    variants, baseline = _variants(layers, source)
    sweep = layers.fields.get("sweep") or {}
    limit = layers.fields.get("max_cases", FIELDS["max_cases"].default)
    check_count(len(variants), sweep, limit, source, layers.at("sweep") if sweep else ())
    _check_params(layers, variants, sweep, cls, source)
    for name in only:
        if name not in variants:
            raise UserError(f"{source.path}: --only: expected a variant ({', '.join(map(repr, variants))}), "
                            f"got {name!r}{did_you_mean(name, variants)}")

    fields = layers.fields
    suite = Suite(
        name=fields["name"], workload=raw["workload"], workload_cls=cls, baseline=baseline,
        description=fields.get("description") or "", warmup=fields.get("warmup", FIELDS["warmup"].default),
        repeat=fields.get("repeat", FIELDS["repeat"].default), timeout=fields.get("timeout", FIELDS["timeout"].default),
        seed=fields.get("seed", FIELDS["seed"].default), rounds=fields.get("rounds", FIELDS["rounds"].default),
        memory_limit_mb=fields.get("memory_limit_mb"),
        **{k: fields.get(k, FIELDS[k].default) for k in ("swap_limit_mb", "pressure_limit")},
        defaults=layers.defaults, variants=variants, sweep=sweep, profile=chosen, path=str(path),
        profiles=tuple(profiles), only=tuple(only),
    )
    _check_cases(suite, source, layers)
    return suite


def _check_cases(suite: Suite, source: Source, layers: _Layers) -> None:
    """Check every case's full parameter set: required ones given, combinations the workload accepts."""
    variants_at, sweep_at = layers.at("variants"), layers.at("sweep")
    seen: dict[str, Case] = {}
    for case in expand(replace(suite, only=())):
        def where(key: str) -> KeyPath:  # the line that set this case's value of key
            if key in case.sweep:
                return sweep_at + (key, suite.sweep[key].index(case.sweep[key]))
            if key in suite.variants[case.variant] or key not in layers.default_origin:
                return variants_at + (case.variant, key)
            return layers.default_origin[key]

        for p in suite.workload_cls.params:
            if p.required and p.name not in case.params:
                raise source.error(variants_at + (case.variant,),
                                   f"expected a value for parameter {p.name!r} ({p.help}), got none")
        if (twin := seen.get(case.case_id)) is not None:
            point = f" at {case.label.split(' · ')[1]}" if case.sweep else ""
            raise source.error(variants_at + (case.variant,),
                               f"expected parameters that differ from variant {twin.variant!r}, got the same{point}")
        seen[case.case_id] = case
        for key, message in suite.workload_cls.check(case.params):
            raise source.error(where(key), message)


def describe(suite: Suite, cases: list[Case]) -> str:
    """A suite and its cases as text: what ``mlxbench list`` and ``run --dry-run`` print."""
    profile = f", profile {suite.profile}" if suite.profile else ""
    extra = f" (profiles: {', '.join(suite.profiles)})" if suite.profiles else ""
    lines = [f"{suite.name}  [{suite.path}]{extra}",
             *([f"  {suite.description}"] if suite.description else []),
             f"  workload {suite.workload}, warmup {suite.warmup}, repeat {suite.repeat}, "
             f"timeout {suite.timeout:g} s, seed {suite.seed}{profile}: {len(cases)} cases"]
    for case in cases:
        mark = "  (baseline)" if case.is_baseline else ""
        lines.append(f"    {case.case_id}  {case.label}{mark}")
    return "\n".join(lines)
