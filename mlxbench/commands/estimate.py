"""``mlxbench estimate``: a case's estimated peak memory, part by part; ``--calibrate RUN_DIR …`` refits
the memory model's constants from measured records and keeps them for that environment id."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from mlxbench import options
from mlxbench.errors import UserError
from mlxbench.estimate import calibrate
from mlxbench.estimate.case import current_env_id, estimate_or_reason
from mlxbench.estimate.model import estimate, gb, supports
from mlxbench.results import store
from mlxbench.results.record import latest_by_case


def add_arguments(parser) -> None:
    parser.add_argument("workload", nargs="?", help="a workload that declares a memory model (train, generate, "
                                                    "load or module:Class; not with --calibrate)")
    parser.add_argument("--model", type=options.non_empty, default="small",
                        help="a preset or a local model directory (default: small)")
    parser.add_argument("--set", dest="sets", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="workload parameters (value read as YAML)")
    parser.add_argument("--calibrate", nargs="+", metavar="RUN_DIR",
                        help="fit the constants to these runs' measured peaks, per environment id")


def main(args) -> int:
    if args.calibrate:
        return calibrate_from(args.calibrate)
    if not args.workload or not supports(args.workload):
        raise UserError(f"workload: expected a workload with a memory model (train, generate, load or "
                        f"module:Class), got {args.workload!r}")
    from mlxbench.commands.fit import fixed_settings
    from mlxbench.workloads import resolve

    params = {**resolve(args.workload).defaults(), **fixed_settings(args.workload, args.model, args.sets)}
    result = estimate_or_reason(args.workload, params, current_env_id())
    if isinstance(result, str):
        raise UserError(f"--model {args.model}: {result}")
    print(f"estimated peak MLX memory of this {args.workload} case: {result.summary()}")
    for name, size in sorted(result.parts.items(), key=lambda kv: -kv[1]):
        print(f"  {name.replace('_', ' '):<24} {gb(size):>10}")
    print(f"  {result.basis}")
    return 0


def _rows(run_dirs: list[str]) -> dict[tuple[str, str], list[tuple[dict, int]]]:
    """(env id, workload) → [(params, measured peak)] over every ok record that can be estimated."""
    rows: dict[tuple[str, str], list] = defaultdict(list)
    for run_dir in run_dirs:
        if not store.is_run_dir(Path(run_dir)):
            raise UserError(f"{run_dir}: --calibrate: expected a run folder (results/<suite>/<run id>), got none there")
        for r in latest_by_case(store.read_records(run_dir)):
            peak = r.metrics.get("peak_memory_bytes")
            if r.ok and supports(r.workload) and isinstance(peak, (int, float)) and peak > 0:
                rows[(r.env_id, r.workload)].append((r.params, int(peak)))
    return rows


def _worst(workload: str, rows, constants) -> float:
    return max(abs(estimate(workload, p, constants).peak_bytes / m - 1) for p, m in rows)


def calibrate_from(run_dirs: list[str]) -> int:
    groups = _rows(run_dirs)
    usable = {k: v for k, v in groups.items() if len(v) >= calibrate.MIN_RECORDS}
    if not usable:
        raise UserError(f"{run_dirs[0]}: --calibrate: expected at least {calibrate.MIN_RECORDS} ok train, "
                        f"generate or load records of one environment, got "
                        f"{max((len(v) for v in groups.values()), default=0)}")
    source = ", ".join(run_dirs)
    for (env_id, workload), rows in sorted(usable.items()):
        constants = calibrate.fit(workload, rows)
        before, after = _worst(workload, rows, None), _worst(workload, rows, constants)
        path = calibrate.save(env_id, workload, constants, source, len(rows))
        print(f"{workload} on environment {env_id}: {len(rows)} records, worst error {before:.1%} with the "
              f"default constants, {after:.1%} calibrated → {path}")
        print("  " + ", ".join(f"{k} {v:g}" for k, v in constants.items()))
    return 0
