"""``mlxbench history --repo PATH --range A..B --workload module:Class``: a workload at each commit.

Every (commit, round) is a case in a fresh worker, recorded in the commit's run folder under
``--out``; rounds interleave across commits, and the same command started again (after a crash,
a kill, a reboot) runs only what is not recorded yet.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from mlxbench.errors import UserError
from mlxbench.history import commit_targets
from mlxbench.history.commits import subject
from mlxbench.history.conclude import conclude
from mlxbench.history.sweep import suite_entry, sweep
from mlxbench.history.table import history_table

LOCK = "history.lock"


def add_arguments(parser) -> None:
    parser.add_argument("suite", nargs="?", help="a suite file (with --versions or --pins: not built yet)")
    commit_targets.add_arguments(parser)
    parser.add_argument("--range", dest="commits", metavar="A..B",
                        help="the commits from A to B (both measured), oldest first")
    parser.add_argument("--rounds", type=int, default=1,
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
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{folder}: --out: expected a history folder no other history is working in, "
                            f"got one in use; wait for it to end") from None
        yield
    finally:
        os.close(fd)


def _range(text: str | None) -> tuple[str, str]:
    first, dots, last = (text or "").partition("..")
    if not (dots and first and last):
        raise UserError(f"--range: expected A..B (two commits), got {text!r}")
    return first, last


def main(args) -> int:
    if not args.repo:
        raise UserError("history: expected --repo PATH --range A..B --workload module:Class "
                        "(a history over released versions, SUITE --versions/--pins, is not built yet)")
    if args.rounds < 1:
        raise UserError(f"--rounds: expected a positive integer, got {args.rounds}")
    first, last = _range(args.commits)
    out = args.out or str(Path("results", "history", args.workload.replace(":", ".") if args.workload else "_"))
    with _held(Path(out)):
        series = commit_targets.series(args, first, last, "--range", "--range", out)
        print(f"history of {series.case.workload} over {len(series.shas)} commits × {args.rounds} round(s) "
              f"→ {series.out}")
        suite = suite_entry(series.case, series.declared, series.command)
        targets = series.targets()
        records = sweep(targets, [series.case], args.rounds, series.out, suite, series.declared, series.prepare)
    names = [m.name for m in series.declared.values() if m.judged and m.kind != "rate"]
    rows = [(t.label, subject(series.repo, t.ref), records[t.label]) for t in targets]
    print()
    print(history_table(rows, series.declared, names))
    page, steps = conclude([t.folder(series.out) for t in targets], series.case.suite, series.out, args.db)
    print("\n".join(["", "steps:", *(f"  {line}" for line in steps)]) if steps else "\nsteps: none found")
    print(f"\nresults: {series.out}\npage:    {page}")
    return 0 if all(r.ok for recs in records.values() for r in recs) else 1
