"""``mlxbench bisect --repo PATH --good REV --bad REV --workload module:Class``: the first bad commit;
``mlxbench bisect SUITE --package mlx --good 0.29.4 --bad 0.32.4``: the first bad release.

Each measurement is one case in a fresh worker at one commit's copy (or one release's environment),
recorded in its run folder under ``--out`` (a bisect started again reuses every measurement there).
"""

from __future__ import annotations

from pathlib import Path

from mlxbench import options
from mlxbench.errors import UserError
from mlxbench.history import commit_targets
from mlxbench.history.bisect import MIN_EFFECT, Search, bisect, differs, figure_values
from mlxbench.history.sweep import TargetProblem, measure, open_target, recorded, round_case
from mlxbench.history.version_targets import version_series
from mlxbench.stats import summarize


def add_arguments(parser) -> None:
    parser.add_argument("suite", nargs="?", help="a suite file, bisected over releases of --package")
    parser.add_argument("--package", help="the package whose releases are bisected (with SUITE)")
    parser.add_argument("--pin", action="append", default=[], metavar="PKG==VERSION",
                        help="hold another package at this release while --package moves (repeatable)")
    parser.add_argument("--variant", help="the suite's variant measured (default: its baseline, first sweep point)")
    parser.add_argument("--profile", default=None, help="the suite's profile (e.g. quick)")
    commit_targets.add_arguments(parser)
    parser.add_argument("--good", required=True, help="a commit (or release) where the figure is as it should be")
    parser.add_argument("--bad", required=True, help="a later commit (or release) where it is not")
    parser.add_argument("--metric", action="append", default=[],
                        help="the figure to bisect on (repeatable; default: every judged one that differs "
                             "between the good and the bad commit)")
    parser.add_argument("--min-effect", type=options.fraction, default=MIN_EFFECT,
                        help=f"the smallest relative change that counts (default {MIN_EFFECT})")
    parser.add_argument("--out", default=None,
                        help="where the measurements go (default results/bisect/<suite or module.Class>)")


class Measurer:
    """Measurements at the points of a series (commits or releases), one more round each time, each a record."""

    def __init__(self, series):
        self.series = series
        self.targets = series.targets()
        self.suite = series.suite()
        self.count = 0

    def known(self) -> dict[int, list[dict]]:
        """The figures of every ok measurement already recorded, by commit."""
        out = {}
        for i, target in enumerate(self.targets):
            ok = [r.metrics for r in recorded(target.folder(self.series.out)).values() if r.ok]
            if ok:
                out[i] = ok
        return out

    def __call__(self, index: int) -> dict:
        try:
            target = self.series.prepare(self.targets[index])
        except TargetProblem as problem:  # its verdict becomes "cannot tell"
            print(f"mlxbench: {problem}", flush=True)
            return {}
        run_dir, env_id = open_target(target, self.series.out, self.suite)
        round_no = len(recorded(run_dir)) + 1
        record = measure(round_case(self.series.case, target, round_no), target, run_dir, env_id)
        self.count += 1
        state = "ok" if record.ok else f"{record.status}: {record.reason}"
        print(f"measured {target.label} (round {round_no}): {state}", flush=True)
        return record.metrics


def _metrics(args, series) -> list[str]:
    judged = [m.name for m in series.declared.values() if m.judged and m.kind != "rate"]
    for name in args.metric:
        if name not in series.declared:
            raise UserError(f"--metric: expected one of {', '.join(series.declared)}, got {name!r}")
    return args.metric or judged


def _moved(name: str, known: dict[int, list[dict]], last: int, min_effect: float) -> bool:
    pooled = [[v for f in known.get(i, []) for v in figure_values(f, name)] for i in (0, last)]
    return differs(*pooled, min_effect) is True


def _answer(search: Search, series) -> str:
    metric = series.declared[search.metric]
    before, after = (summarize(search.pooled(p))["median"] for p in (search.good, search.bad))
    name, what = series.name(search.bad)
    unit = f" {metric.unit}" if metric.unit else ""
    return f"first bad: {name} ({metric.label} {metric.display(before)} → {metric.display(after)}{unit}; {what})"


def _series(args):
    """The commits of --repo, or the releases of --package for SUITE, and a line saying which."""
    if args.suite:
        series = version_series(args)
        return series, (f"bisecting {len(series.versions)} releases of {series.package} "
                        f"{series.versions[0]}..{series.versions[-1]} on {series.case.label}")
    if not args.repo:
        raise UserError("bisect: expected SUITE --package PKG, or --repo PATH --workload module:Class")
    out = args.out or str(Path("results", "bisect", (args.workload or "_").replace(":", ".")))
    series = commit_targets.series(args, args.good, args.bad, "--good", "--bad", out)
    return series, f"bisecting {len(series.shas)} commits {series.shas[0][:12]}..{series.shas[-1][:12]} of {series.repo}"


def main(args) -> int:
    series, line = _series(args)
    print(line, flush=True)
    points = len(series.targets())
    measurer, names, answers = Measurer(series), _metrics(args, series), []
    if not args.metric:  # which judged figures moved between the ends: measure the ends first
        for end in (0, points - 1):
            if end not in measurer.known():
                measurer(end)
        names = [n for n in names if _moved(n, measurer.known(), points - 1, args.min_effect)] or names
    for name in names:
        search = bisect(points, measurer, name, args.min_effect, known=measurer.known())
        if search.found:
            answers.append(_answer(search, series))
        else:
            print(f"{name}: {search.note or 'cannot tell'} (narrowed to {series.name(search.good)[0]}.."
                  f"{series.name(search.bad)[0]})")
    print(f"{measurer.count} case measurements; records under {series.out}")
    for line in answers:
        print(line)
    return 0 if answers else 1
