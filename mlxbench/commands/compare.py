"""``mlxbench compare BASE NEW``: what got better or worse between two runs; exit 1 on a regression."""

from __future__ import annotations

import json
import sys

from mlxbench import options
from mlxbench.errors import UserError
from mlxbench.report.comparison import format_markdown, format_text
from mlxbench.results.compare import DEFAULT_THRESHOLD_PCT, compare_runs, exit_status
from mlxbench.results.run import load_run


def add_arguments(parser) -> None:
    parser.add_argument("base", metavar="BASE", help="the run to compare against (a run directory)")
    parser.add_argument("new", metavar="NEW", help="the run being judged")
    parser.add_argument("--threshold", type=options.percentage, default=DEFAULT_THRESHOLD_PCT, metavar="PCT",
                        help="smallest change in %% that counts (default %(default)g)")
    parser.add_argument("--format", choices=("text", "md", "json"), default="text",
                        help="output format (default %(default)s)")


def main(args) -> int:
    base, new = load_run(args.base), load_run(args.new)
    comparison = compare_runs(base, new, args.threshold)
    if not comparison["cases"]:
        raise UserError(f"{args.new}: nothing to compare: it shares no case with {args.base} "
                        "(a case is the same suite, workload, parameters and seed)")
    if args.format == "json":
        text = json.dumps({"base": str(base.path), "new": str(new.path), **comparison}, indent=2, allow_nan=False)
    elif args.format == "md":
        text = format_markdown(comparison, str(base.path), str(new.path))
    else:
        text = format_text(comparison, str(base.path), str(new.path))
    sys.stdout.write(text + "\n")
    return exit_status(comparison)
