"""The ``mlxbench`` command: ``run | list | workloads | report | compare | profile | env``.

Each subcommand lives in its own module, which provides ``add_arguments(parser)``
and ``main(args) -> int``; modules are imported only when their command runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import mlxbench
from mlxbench.errors import UserError

COMMANDS = {
    "run": ("mlxbench.commands.run", "run a suite: every case in its own process"),
    "list": ("mlxbench.commands.list", "list suites and the cases they expand to"),
    "workloads": ("mlxbench.commands.workloads", "list the workloads, or one workload's parameters"),
    "report": ("mlxbench.commands.report", "render a run's records as HTML, Markdown or CSV"),
    "compare": ("mlxbench.commands.compare", "compare two runs; exit 1 on a significant regression"),
    "profile": ("mlxbench.commands.profile", "run a Python script under the memory profiler"),
    "env": ("mlxbench.commands.env", "show the environment every run records, with a calibration"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlxbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mlxbench {mlxbench.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # import only the module that will run
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.main(args) or 0)
    except UserError as err:
        print(f"mlxbench: {err}", file=sys.stderr)
        return UserError.exit_status
    except KeyboardInterrupt:
        print("mlxbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
