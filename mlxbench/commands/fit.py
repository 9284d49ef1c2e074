"""``mlxbench fit WORKLOAD``: the fastest configuration whose measured peak stays under a memory budget.

The search (mlxbench.run.advisor) estimates every candidate, measures only those that can fit
and can beat the best so far, each in its own worker process with the budget as its memory
limit, and records every one in the run's records.jsonl: ``--resume RUN_DIR`` after a kill
continues without re-running what was measured.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlxbench import options
from mlxbench.errors import UserError
from mlxbench.estimate.case import current_env_id, estimate_or_reason
from mlxbench.estimate.model import gb, weights_bytes
from mlxbench.results import store
from mlxbench.results.record import latest_by_case
from mlxbench.run import advisor
from mlxbench.run.rundir import open_run_dir, record_environment
from mlxbench.run.runner import make_record
from mlxbench.run.supervise import run_isolated
from mlxbench.results.units import MB
from mlxbench.suite.case import Case, case_of, settings_label
from mlxbench.suite.lookup import workload_class
from mlxbench.suite.schema import Suite, parse_set
from mlxbench.suite.source import Source
from mlxbench.workloads import get, resolve

FIT_SOURCE = Source("mlxbench fit")  # where a --set came from, in its error message
SAFE_SHARE = 0.8  # of the memory available now: what "the machine can safely give"


def add_arguments(parser) -> None:
    parser.add_argument("workload", type=options.non_empty, help="what to fit: a workload that declares a search "
                                                                  f"space ({', '.join(searchable())}) or module:Class")
    parser.add_argument("--model", type=options.non_empty, default="small",
                        help="a preset or a local model directory (default: small)")
    parser.add_argument("--set", dest="sets", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="fixed settings (e.g. lora={rank: 8} seq_length=512); a fixed setting is not searched")
    parser.add_argument("--budget", type=options.size_bytes, default=None,
                        help="memory budget, e.g. 16GB or 800MB (default: 80%% of the memory available now)")
    parser.add_argument("--margin", type=options.fraction, default=0.05,
                        help="headroom kept under the budget, as a fraction (default 0.05)")
    parser.add_argument("--warmup", type=options.steps, default=1, help="untimed steps per candidate (default 1)")
    parser.add_argument("--repeat", type=options.timed_steps, default=3, help="timed steps per candidate (default 3)")
    parser.add_argument("--timeout", type=options.seconds, default=600.0, help="seconds per candidate (default 600)")
    parser.add_argument("--runoff-rounds", type=options.whole_number(0, 100, "a number of rounds"), default=2,
                        help="alternating rounds that measure the candidates within 5%% of the best again before "
                             "one is named (default 2; 0: the best single measurement wins)")
    parser.add_argument("--max-batch", type=options.whole_number(1, 2**20, "a batch size"),
                        default=advisor.MAX_BATCH,
                        help=f"largest batch size to try (default {advisor.MAX_BATCH})")
    parser.add_argument("--no-rules-of-thumb", action="store_true",
                        help="do not measure what the rules of thumb would have picked")
    parser.add_argument("--out", type=options.non_empty, default="results", help="results root (default: results)")
    parser.add_argument("--resume", type=options.non_empty, metavar="RUN_DIR",
                        help="continue this fit run; measured candidates are reused")
    parser.add_argument("--report", action="store_true", help="write the HTML report under reports/")


def searchable() -> list[str]:
    """The shipped workloads that declare a search space."""
    from mlxbench.workloads import names

    return [n for n in names() if get(n).search_space is not None]


def workload_space(workload: str) -> advisor.Space:
    """The search space ``workload`` declares; UserError (exit 2) if it has none or cannot be found."""
    try:
        space = workload_class(workload, (str(Path.cwd()),)).search_space
    except LookupError as err:
        raise UserError(f"workload: {err}") from None
    if space is None:
        raise UserError(f"workload: expected a workload with a search space ({', '.join(searchable())} or "
                        f"module:Class), got {workload!r}, which is not searchable")
    return space


def parse_budget(text: str | float | None) -> float:
    """Bytes from '16GB', '800 MB', '1.5GiB' (or bytes already parsed by --budget's type); None: SAFE_SHARE
    of the memory available now."""
    if text is None:
        import psutil

        return SAFE_SHARE * psutil.virtual_memory().available
    if isinstance(text, float):
        return text
    try:
        return options.size_bytes(text)
    except argparse.ArgumentTypeError as err:
        raise UserError(f"--budget: {err}") from None


def resumed_budget(run_dir: str) -> float:
    """The budget a fit run was started with (its memory limit): a resume without --budget keeps it."""
    limit = store.read_suite(run_dir).get("memory_limit_mb") if store.is_run_dir(Path(run_dir)) else None
    return limit * MB if isinstance(limit, int) else parse_budget(None)


def fixed_settings(workload: str, model: str, sets: list[str]) -> dict:
    """The model and every --set (read by the suite's own ``parse_set``), each checked against its Param."""
    cls = resolve(workload)
    declared = {p.name: p for p in cls.params}
    fixed = {"model": model} if "model" in declared else {}
    for item in sets:
        key, value = parse_set(item, FIT_SOURCE)
        if key not in declared:
            raise UserError(f"--set {item}: expected key=value with a key of {', '.join(declared)}, got {item!r}")
        fixed[key] = value
    for key, value in fixed.items():
        if (problem := declared[key].check(value)) is not None:
            raise UserError(f"--set {key}: {problem}")
    for key, problem in cls.check({**cls.defaults(), **fixed}):  # what `run` checks of a case (lora's keys)
        raise UserError(f"--set {key}: {problem}")
    return fixed


def make_suite(args, fixed: dict, budget: float) -> Suite:
    cls = resolve(args.workload)
    name = f"fit-{args.workload.replace(':', '-')}-{Path(args.model).name}"
    return Suite(name=name, workload=args.workload, workload_cls=cls, baseline="candidate",
                 description=f"mlxbench fit: the fastest {args.workload} configuration under {gb(budget)}",
                 warmup=args.warmup, repeat=args.repeat, timeout=args.timeout, seed=0,
                 memory_limit_mb=max(1, int(budget / MB)), defaults=fixed, variants={"candidate": {}})


class Measurer:
    """Measures a candidate in a worker and records it; a candidate the run already has is reused."""

    def __init__(self, suite: Suite, run_dir: Path, env_id: str, objective: str):
        self.suite, self.run_dir, self.env_id, self.objective = suite, run_dir, env_id, objective
        self.done = {r.case_id: r for r in latest_by_case(store.read_records(run_dir))}
        self.measured = self.reused = 0

    def case(self, settings: dict, round_: int = 0) -> Case:
        """The candidate's case; a measurement repeated in round ``round_`` ≥ 1 (the runoff's) is a case of
        its own (its own id), so that a resumed search reuses it and never mistakes it for the first."""
        suffix = f" [round {round_}]" if round_ else ""
        return case_of(self.suite, settings_label(settings) + suffix, settings, settings, id_suffix=suffix)

    def __call__(self, settings: dict, round_: int = 0) -> advisor.Trial:
        case = self.case(settings, round_)
        record = self.done.get(case.case_id)
        problems = self.suite.workload_cls.check(case.params) if record is None else []
        if problems:  # e.g. a KV cache this model cannot quantize: not a candidate
            return advisor.Trial(dict(settings), 0, status=f"skipped: {problems[0][0]}: {problems[0][1]}")
        if record is None:
            print(f"  measuring {case.variant} …", flush=True)
            record = make_record(case, run_isolated(case, self.run_dir), self.run_dir.name, self.env_id, False)
            store.append_record(self.run_dir, record)
            self.done[case.case_id] = record
            self.measured += 1
        else:
            self.reused += 1
        m = record.metrics
        speed = m.get(self.objective)
        return advisor.Trial(
            settings=dict(settings), estimate_bytes=(record.estimate or {}).get("peak_bytes") or 0,
            status=record.status if record.ok or not record.reason else f"{record.status}: {record.reason}",
            speed=speed, mlx_peak_bytes=m.get("peak_memory_bytes"),
            footprint_bytes=max(m.get("peak_rss_bytes") or 0, m.get("peak_memory_bytes") or 0) or None,
            case_id=case.case_id)


def estimator(workload: str, fixed: dict, env_id: str | None):
    def estimate(settings: dict) -> int:
        result = estimate_or_reason(workload, {**resolve(workload).defaults(), **fixed, **settings}, env_id)
        return 0 if isinstance(result, str) else result.peak_bytes  # no estimate: measure, the limit stops it
    return estimate


def check_possible(workload: str, space: advisor.Space, fixed: dict, families: list[dict], estimate,
                   budget: float) -> None:
    """UserError (exit 2) when even the smallest configuration cannot fit the budget."""
    params = {**resolve(workload).defaults(), **fixed}
    weights = weights_bytes(workload, params)
    dtype = params.get("dtype") or "float32"
    bits = f", {params['quantization']}-bit" if params.get("quantization") else ""
    def first_batch(family: dict) -> int:
        return params[space.axis] if space.axis in fixed else advisor.family_batches(space, family)[0]

    smallest = min(({**f, space.axis: first_batch(f)} for f in families), key=estimate)
    need = estimate(smallest)
    if weights > budget or need > budget:
        raise UserError(f"--budget {gb(budget)}: nothing fits: the smallest configuration ({settings_label(smallest)}) "
                        f"needs ~{gb(need)}; the model's weights alone are {gb(weights)} at {dtype}{bits}")


def main(args) -> int:
    from mlxbench.commands import fit_output

    budget = parse_budget(args.budget) if args.budget or not args.resume else resumed_budget(args.resume)
    space = workload_space(args.workload)
    fixed = fixed_settings(args.workload, args.model, args.sets)
    families = advisor.families_for(space, fixed)
    suite = make_suite(args, fixed, budget)
    check_possible(args.workload, space, fixed, families, estimator(args.workload, fixed, current_env_id()), budget)
    with open_run_dir(suite, args.out, args.resume) as run_dir:
        env_id = record_environment(run_dir, calibrate=False)
        estimate = estimator(args.workload, fixed, env_id)
        measurer = Measurer(suite, run_dir, env_id, space.objective)
        search = advisor.Search(space, families, budget, args.margin, estimate, measurer, max_batch=args.max_batch,
                                fixed_batch=fixed.get(space.axis), remeasure=measurer,
                                runoff_rounds=args.runoff_rounds)
        best = search.run()
        rules = {} if args.no_rules_of_thumb else fit_output.measure_rules(
            args.workload, search, measurer, fixed, budget)
    return fit_output.report(args, search, best, rules, run_dir, measurer)
