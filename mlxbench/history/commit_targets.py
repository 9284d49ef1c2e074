"""The commits of a user's repository as targets of a history or bisect, each with its own copy."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from mlxbench.history import commits
from mlxbench.history.sweep import Target, suite_entry, user_case
from mlxbench.suite.schema import Case

COPIES = ".commits"  # under --out: one clean copy of the tree per commit measured


@dataclass
class CommitSeries:
    """The commits from a first to a last one, the user's case and where its records go."""

    repo: Path
    shas: list[str]
    out: Path
    case: Case
    declared: dict
    command: str

    def targets(self) -> list[Target]:
        return [Target(label=sha[:12], order=i, kind="commit", ref=sha) for i, sha in enumerate(self.shas)]

    def suite(self) -> dict:
        """What each commit's ``suite.yaml`` says."""
        return suite_entry(self.case, self.declared, self.command)

    def name(self, index: int) -> tuple[str, str]:
        """How the answer names a commit: its short id and subject."""
        return f"{self.shas[index][:12]}", commits.subject(self.repo, self.shas[index])

    def prepare(self, target: Target) -> Target:
        """The target with its commit's copy made, to import the workload from."""
        copy = commits.checkout(self.repo, target.ref, self.out / COPIES)
        return replace(target, workload_path=(str(copy),))


def add_arguments(parser) -> None:
    """The options every command over a user's commits takes."""
    from mlxbench import options

    parser.add_argument("--repo", help="the git repository whose commits are measured")
    parser.add_argument("--workload", help="the workload as module:Class, imported from each commit's tree")
    parser.add_argument("--warmup", type=options.steps, default=2,
                        help="untimed steps before the timed ones (default 2)")
    parser.add_argument("--repeat", type=options.timed_steps, default=10,
                        help="timed steps per measurement (default 10)")
    parser.add_argument("--timeout", type=options.seconds, default=600.0,
                        help="seconds one measurement may run (default 600)")


def series(args, first_rev: str, last_rev: str, first_option: str, last_option: str, out: str) -> CommitSeries:
    """The commits ``first_rev`` … ``last_rev`` of ``--repo`` and the ``--workload`` case at the last one."""
    from mlxbench.errors import UserError

    if not args.workload:
        raise UserError("--workload: expected module:Class of the repository, got nothing")
    repo = Path(args.repo).resolve()
    first = commits.resolve(repo, first_rev, first_option)
    last = commits.resolve(repo, last_rev, last_option)
    shas = commits.commits_from(repo, first, last)
    out_dir = Path(out).resolve()
    copy = commits.checkout(repo, last, out_dir / COPIES)
    case, declared = user_case(args.workload, copy, args.warmup, args.repeat, args.timeout)
    return CommitSeries(repo, shas, out_dir, case, declared, shlex.join(["mlxbench", *sys.argv[1:]]))
