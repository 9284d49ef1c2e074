"""``mlxbench run SUITE``: every case of a suite in its own fresh process (see mlxbench.run.runner)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from mlxbench import options
from mlxbench.results.rounds import rounds_in
from mlxbench.results.store import read_records
from mlxbench.report.cost import time_spent
from mlxbench.run.progress import table
from mlxbench.run.rundir import open_run_dir, record_environment
from mlxbench.run.runner import run_suite
from mlxbench.suite.schema import describe, expand, load


def add_arguments(parser) -> None:
    parser.add_argument("suite", help="the suite file (YAML)")
    parser.add_argument("--profile", default=None,
                        help="a profile of the suite (e.g. quick); full: the suite as written; "
                             "auto: quick when MLX runs on the CPU and the suite has one")
    parser.add_argument("--set", dest="sets", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override warmup, repeat, timeout, seed, memory_limit_mb, swap_limit_mb, "
                             "pressure_limit or a workload parameter of every variant (value read as YAML)")
    parser.add_argument("--only", action="extend", nargs="+", default=[], metavar="VARIANT",
                        help="run only these variants")
    parser.add_argument("--out", type=options.non_empty, default="results", help="results root (default: results)")
    parser.add_argument("--resume", type=options.non_empty, metavar="RUN_DIR",
                        help="continue this run (results/<suite>/<run id>) with its settings: "
                             "run only the cases not yet ok")
    parser.add_argument("--dry-run", action="store_true", help="validate and list the cases, run nothing")
    parser.add_argument("--inline", action="store_true",
                        help="run cases in this process (for debugging; no isolation, no timeout)")
    parser.add_argument("--report", action="store_true",
                        help="render the run's HTML report under reports/ when it ends, and print its path")
    parser.add_argument("--rounds", type=options.whole_number(1, options.MAX_ROUNDS, "a number of rounds"),
                        default=None, metavar="N",
                        help="run each case in N separate processes, interleaved across cases (round 1 of every "
                             "case, then round 2, …), samples pooled, round-to-round spread kept (default: the "
                             "suite's rounds, or those of the run resumed, else 1)")
    parser.add_argument("--db", type=options.non_empty, default=None, metavar="URL",
                        help="the results database the run is also stored in (default: $MLXBENCH_DB, else "
                             "sqlite:///<out>/mlxbench.db); the run folder stays the result")
    parser.add_argument("--no-db", action="store_true", help="do not store the run in the results database")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="skip the environment's matmul/bandwidth calibration (saves ~3 s)")


def main(args) -> int:
    suite = load(args.suite, profile=args.profile, sets=args.sets, only=args.only)
    cases = expand(suite)
    if args.dry_run:
        from mlxbench.estimate.case import current_env_id, with_estimates

        print(with_estimates(describe(suite, cases), cases, current_env_id()))
        return 0
    started, started_at = time.monotonic(), datetime.now(timezone.utc).isoformat(timespec="seconds")
    with open_run_dir(suite, args.out, args.resume) as run_dir:  # held by this runner alone until the end
        env_id = record_environment(run_dir, calibrate=not args.no_calibrate)
        rounds = args.rounds or (args.resume and rounds_in(read_records(run_dir))) or suite.rounds
        records = run_suite(suite, cases, run_dir, env_id, inline=args.inline, rounds=rounds)
    print()
    print(table(records, suite.workload_cls.headline, suite.workload_cls.declared_metrics()))
    # Every process this invocation ran (each round, not the pooled records), against its wall time.
    ran = [r for r in read_records(run_dir) if r.started_at >= started_at and not (r.rounds and r.round is None)]
    if spent := time_spent(ran, time.monotonic() - started):
        print(f"\n{spent}")
    print(f"\nresults: {run_dir}")
    if not args.no_db:
        from mlxbench.results.db import index_run, run_url

        print(index_run(run_dir, args.db or run_url(args.out)))
    if args.report:
        from mlxbench.commands.report import write_html

        print(f"report:  {write_html(run_dir)}")
    return 0 if all(r.ok for r in records) else 1
