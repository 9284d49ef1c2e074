"""``mlxbench history --repo PATH --range A..B --workload module:Class``: a workload at each commit.

Every (commit, round) is a case in a fresh worker, recorded in the commit's run folder under
``--out``; rounds interleave across commits, and the same command started again (after a crash,
a kill, a reboot) runs only what is not recorded yet.
"""

from __future__ import annotations

import shlex
import sys
from contextlib import contextmanager
from pathlib import Path

from mlxbench import options
from mlxbench.errors import UserError
from mlxbench.history import commit_targets, version_targets
from mlxbench.history.commits import subject
from mlxbench.history.conclude import conclude
from mlxbench.history.sweep import suite_entry, sweep
from mlxbench.history.envs import pin_sets
from mlxbench.history.table import history_table
from mlxbench.run.rundir import exclusively
from mlxbench.suite.schema import expand, load

LOCK = "history.lock"


def add_arguments(parser) -> None:
    parser.add_argument("suite", nargs="?", help="a suite file, measured at each --versions or --pins set")
    parser.add_argument("--versions", metavar="PKG==A,B,C",
                        help="one package swept: an environment per version (e.g. mlx==0.29.4,0.30.6,0.32.4)")
    parser.add_argument("--pins", action="append", default=[], metavar='"A==1 B==2"',
                        help="a whole pin set, one environment (repeatable)")
    parser.add_argument("--profile", default=None, help="the suite's profile (e.g. quick)")
    parser.add_argument("--only", action="extend", nargs="+", default=[], metavar="VARIANT",
                        help="measure only these variants of the suite")
    commit_targets.add_arguments(parser)
    parser.add_argument("--range", dest="commits", metavar="A..B",
                        help="the commits from A to B (both measured), oldest first")
    parser.add_argument("--rounds", default=1,
                        type=options.whole_number(1, options.MAX_ROUNDS, "a number of rounds"),
                        help="measurements of each commit, interleaved across commits (default 1)")
    parser.add_argument("--out", default=None,
                        help="the history's folder (default results/history/<module.Class>); "
                             "the same folder again resumes")
    parser.add_argument("--db", default=None,
                        help="the results database the history is stored in (default: $MLXBENCH_DB or "
                             "sqlite:///results/mlxbench.db)")


@contextmanager
def _held(folder: Path):
    """One history at a time in a folder: two would both run what neither has recorded yet."""
    folder.mkdir(parents=True, exist_ok=True)
    with exclusively(folder / LOCK, lambda _: f"{folder}: --out: expected a history folder no other history is "
                                              f"working in, got one in use; wait for it to end"):
        yield


def _range(text: str | None) -> tuple[str, str]:
    first, dots, last = (text or "").partition("..")
    if not (dots and first and last):
        raise UserError(f"--range: expected A..B (two commits), got {text!r}")
    return first, last


def main(args) -> int:
    if args.rounds < 1:
        raise UserError(f"--rounds: expected a positive integer, got {args.rounds}")
    if args.suite:
        return _versions(args)
    if not args.repo:
        raise UserError("history: expected SUITE --versions/--pins, or --repo PATH --range A..B --workload module:Class")
    first, last = _range(args.commits)
    out = args.out or str(Path("results", "history", args.workload.replace(":", ".") if args.workload else "_"))
    with _held(Path(out)):
        series = commit_targets.series(args, first, last, "--range", "--range", out)
        print(f"history of {series.case.workload} over {len(series.shas)} commits × {args.rounds} round(s) "
              f"→ {series.out}")
        suite = suite_entry(series.case, series.declared, series.command)
        targets = series.targets()
        records, problems = sweep(targets, [series.case], args.rounds, series.out, suite, series.declared,
                                  series.prepare)
    names = [m.name for m in series.declared.values() if m.judged and m.kind != "rate"]
    rows = [(t.label, subject(series.repo, t.ref), records[t.label]) for t in targets]
    return _end(args, rows, series.declared, names, targets, series.case.suite, series.out, records, problems)


def _versions(args) -> int:
    """``history SUITE --versions …/--pins …``: the suite's cases in one environment per pin set."""
    sets = pin_sets(args.versions, args.pins)
    if not sets:
        raise UserError(f"{args.suite}: expected --versions PKG==A,B,… or --pins \"A==1 B==2\" (a history needs versions)")
    suite = load(args.suite, profile=args.profile, only=args.only)
    cases, declared = expand(suite), suite.workload_cls.declared_metrics()
    out = Path(args.out or Path("results", "history", suite.name)).resolve()
    targets = version_targets.targets(sets)
    entry = {**suite.to_dict(), "command": shlex.join(["mlxbench", *sys.argv[1:]]),
             "metrics": [m.to_dict() for m in declared.values()]}
    print(f"history of {suite.name} over {len(targets)} environment(s) × {len(cases)} case(s) × "
          f"{args.rounds} round(s) → {out}")
    with _held(out):
        records, problems = sweep(targets, cases, args.rounds, out, entry, declared, version_targets.prepare)
    names = [m.name for m in declared.values() if (m.judged and m.kind != "rate") or m.name == "peak_memory_bytes"]
    rows = [(t.label, c.label, [r for r in records[t.label] if r.case_id.rsplit("-", 1)[0] == c.case_id])
            for c in cases for t in targets]
    return _end(args, rows, declared, names, targets, suite.name, out, records, problems)


def _end(args, rows, declared, names, targets, suite_name, out, records, problems) -> int:
    """The table, then the database, the steps and the page; exit 1 when a target or case failed."""
    print()
    print(history_table(rows, declared, list(dict.fromkeys(names))))
    folders = [t.folder(out) for t in targets if t.label not in problems]
    page, steps = conclude(folders, suite_name, out, args.db)
    print("\n".join(["", "steps:", *(f"  {line}" for line in steps)]) if steps else "\nsteps: none found")
    for label, problem in problems.items():
        print(f"not measured: {problem}")
    print(f"\nresults: {out}\npage:    {page}")
    return 0 if not problems and all(r.ok for recs in records.values() for r in recs) else 1
