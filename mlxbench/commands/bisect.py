"""``mlxbench bisect --repo PATH --good REV --bad REV --workload module:Class``: the first bad commit.

Each measurement is one case in a fresh worker at one commit's copy, recorded in that commit's run
folder under ``--out`` (a bisect started again reuses every measurement already there).
"""

from __future__ import annotations

from pathlib import Path

from mlxbench.errors import UserError
from mlxbench.history import commit_targets
from mlxbench.history.bisect import MIN_EFFECT, Search, bisect, differs, figure_values
from mlxbench.history.commits import subject
from mlxbench.history.sweep import measure, open_target, recorded, round_case, suite_entry
from mlxbench.stats import summarize


def add_arguments(parser) -> None:
    commit_targets.add_arguments(parser)
    parser.add_argument("--good", required=True, help="a commit where the figure is as it should be")
    parser.add_argument("--bad", required=True, help="a later commit where it is not")
    parser.add_argument("--metric", action="append", default=[],
                        help="the figure to bisect on (repeatable; default: every judged one that differs "
                             "between the good and the bad commit)")
    parser.add_argument("--min-effect", type=float, default=MIN_EFFECT,
                        help=f"the smallest relative change that counts (default {MIN_EFFECT})")
    parser.add_argument("--out", default="results/bisect", help="where the measurements go (default results/bisect)")


class Measurer:
    """Measurements at the commits of a series, one more round each time, every one a record."""

    def __init__(self, series: commit_targets.CommitSeries):
        self.series = series
        self.targets = series.targets()
        self.suite = suite_entry(series.case, series.declared, series.command)
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
        target = self.series.prepare(self.targets[index])
        run_dir, env_id = open_target(target, self.series.out, self.suite)
        round_no = len(recorded(run_dir)) + 1
        record = measure(round_case(self.series.case, target, round_no), target, run_dir, env_id)
        self.count += 1
        state = "ok" if record.ok else f"{record.status}: {record.reason}"
        print(f"measured {target.label} (round {round_no}): {state}", flush=True)
        return record.metrics


def _metrics(args, series: commit_targets.CommitSeries) -> list[str]:
    judged = [m.name for m in series.declared.values() if m.judged and m.kind != "rate"]
    for name in args.metric:
        if name not in series.declared:
            raise UserError(f"--metric: expected one of {', '.join(series.declared)}, got {name!r}")
    return args.metric or judged


def _moved(name: str, known: dict[int, list[dict]], last: int, min_effect: float) -> bool:
    pooled = [[v for f in known.get(i, []) for v in figure_values(f, name)] for i in (0, last)]
    return differs(*pooled, min_effect) is True


def _answer(search: Search, series: commit_targets.CommitSeries) -> str:
    metric = series.declared[search.metric]
    before, after = (summarize(search.pooled(p))["median"] for p in (search.good, search.bad))
    sha = series.shas[search.bad]
    unit = f" {metric.unit}" if metric.unit else ""
    return (f"first bad: {sha[:12]} ({metric.label} {metric.display(before)} → {metric.display(after)}{unit}; "
            f"{subject(series.repo, sha)})")


def main(args) -> int:
    if not args.repo:
        raise UserError("bisect: expected --repo PATH (bisect over released versions is not built yet)")
    series = commit_targets.series(args, args.good, args.bad, "--good", "--bad", args.out)
    print(f"bisecting {len(series.shas)} commits {series.shas[0][:12]}..{series.shas[-1][:12]} of {series.repo}")
    measurer, names, answers = Measurer(series), _metrics(args, series), []
    if not args.metric:  # which judged figures moved between the ends: measure the ends first
        for end in (0, len(series.shas) - 1):
            if end not in measurer.known():
                measurer(end)
        names = [n for n in names if _moved(n, measurer.known(), len(series.shas) - 1, args.min_effect)] or names
    for name in names:
        search = bisect(len(series.shas), measurer, name, args.min_effect, known=measurer.known())
        if search.found:
            answers.append(_answer(search, series))
        else:
            print(f"{name}: {search.note or 'cannot tell'} (narrowed to {series.shas[search.good][:12]}.."
                  f"{series.shas[search.bad][:12]})")
    print(f"{measurer.count} case measurements; records under {series.out}")
    for line in answers:
        print(line)
    return 0 if answers else 1
