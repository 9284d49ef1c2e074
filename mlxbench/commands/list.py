"""``mlxbench list [PATH]``: the suites and the cases they expand to."""

from __future__ import annotations

import sys
from pathlib import Path

from mlxbench.errors import UserError
from mlxbench.estimate.case import current_env_id, with_estimates
from mlxbench.suite.schema import describe, expand, load


def suite_files(path: str | Path) -> list[Path]:
    """The suite files at ``path``: the file itself, or the *.yaml / *.yml in a directory."""
    path = Path(path)
    if path.is_dir():
        return sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
    return [path]


def add_arguments(parser) -> None:
    parser.add_argument("path", nargs="?", default="suites", help="a suite file or a directory of them (default: suites)")
    parser.add_argument("--profile", default=None, help="apply this profile of each suite (full: none; auto: "
                                                        "quick on a CPU-only MLX)")


def main(args) -> int:
    files = suite_files(args.path)
    if not files:
        raise UserError(f"{args.path}: expected a suite file or a directory with *.yaml suites, got none")
    status = 0
    env_id = None  # found once a suite has loaded: a bad file is refused before the environment is read
    for index, path in enumerate(files):
        try:
            suite = load(path, profile=args.profile)
        except UserError as err:
            if len(files) == 1:
                raise
            print(f"mlxbench: {err}", file=sys.stderr)
            status = UserError.exit_status
            continue
        cases = expand(suite)
        env_id = env_id or current_env_id()
        print(("\n" if index else "") + with_estimates(describe(suite, cases), cases, env_id))
    return status
