"""``mlxbench fit`` against an exhaustive grid over the same axes: does the search find (within 3%)
the grid's best tokens/s while running at most half as many cases (its runoff rounds counted)?

Both measure every candidate the same way: a worker process per case, the budget as its memory
limit, ``--warmup``/``--repeat`` steps. The grid runs every (gradient checkpointing, micro-batch
size, batch size) the search may pick, up to ``--max-batch``; the search runs what it needs.
Where the two pick different configurations, their speeds come from different moments of a machine
whose speed drifts, and the grid's best is the highest of many noisy measurements (biased upwards).
So the two picks are then measured again head to head, in alternating rounds (``--rounds``), and the
acceptance reads that ratio. Run on a quiet machine; the figure for the README is the lines it prints
at the end:

    PYTHONPATH=$PWD .venv/bin/python benchmarks/fit_vs_grid.py --budget 1.2GB --seq-length 256 --max-batch 16

(``--quick`` runs a short version: tiny model, small grid, to check the script works.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np

import mlxbench  # noqa: F401  (BLAS before mlx.core)
from mlxbench.commands.fit import Measurer, estimator, fixed_settings, make_suite, parse_budget, settings_label
from mlxbench import stats
from mlxbench.run import advisor
from mlxbench.workloads import get
from mlxbench.run.rundir import open_run_dir, record_environment

TOLERANCE = 0.03


def grid_settings(families: list[dict], max_batch: int) -> list[dict]:
    space = get("train").search_space
    return [{**f, "batch_size": b} for f in families for b in advisor.family_batches(space, f, max_batch)]


@contextmanager
def measuring(args, fixed: dict, budget: float, kind: str, resume: str | None = None):
    """A Measurer over a run directory of its own (every candidate measured in a worker), or over the run
    ``resume``, whose recorded candidates are reused."""
    suite_args = SimpleNamespace(workload="train", model=args.model, warmup=args.warmup, repeat=args.repeat,
                                 timeout=args.timeout)
    suite = make_suite(suite_args, fixed, budget)
    suite.name = f"{suite.name}-{kind}"
    with open_run_dir(suite, args.out, resume) as run_dir:
        env_id = record_environment(run_dir, calibrate=False)
        yield Measurer(suite, run_dir, env_id, get("train").search_space.objective)


def run_both(args, fixed: dict, budget: float) -> tuple[advisor.Search, list[advisor.Trial]]:
    space = get("train").search_space
    families = advisor.families_for(space, fixed)
    with measuring(args, fixed, budget, "fit") as measurer:
        search = advisor.Search(space, families, budget, args.margin, estimator("train", fixed, measurer.env_id),
                                measurer, max_batch=args.max_batch, remeasure=measurer,
                                runoff_rounds=args.runoff_rounds)
        search.run()
    with measuring(args, fixed, budget, "grid", args.grid_run) as measurer:
        grid = [measurer(s) for s in grid_settings(families, args.max_batch)]
    return search, grid


def head_to_head(args, fixed: dict, budget: float, picks: dict[str, dict]) -> dict[str, list[float]]:
    """Each pick's tokens/s, measured again in ``args.rounds`` alternating rounds (ABBA)."""
    speeds: dict[str, list[float]] = {name: [] for name in picks}
    with measuring(args, fixed, budget, "head-to-head") as measurer:
        for round_, name in stats.alternating(list(picks), args.rounds):
            print(f"  {name}'s pick:", flush=True)
            speeds[name].append(measurer(picks[name], round_).speed or float("nan"))
    return speeds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--budget", default="1.2GB")
    parser.add_argument("--seq-length", type=int, default=256)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--margin", type=float, default=0.05)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--runoff-rounds", type=int, default=2, help="as mlxbench fit's (default 2)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="alternating rounds of the two picks head to head, when they differ (default 4)")
    parser.add_argument("--grid-run", metavar="RUN_DIR", default=None,
                        help="the grid's run of an earlier call (same settings): its cases are reused, the rest run")
    parser.add_argument("--out", default=None, help="results root (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="tiny model, small grid: checks the script runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.seq_length, args.max_batch, args.repeat, args.budget, args.rounds = "tiny", 32, 4, 1, "1GB", 2
    args.out = args.out or tempfile.mkdtemp(prefix="mlxbench-fit-vs-grid-")
    budget = parse_budget(args.budget)
    fixed = fixed_settings("train", args.model, [f"seq_length={args.seq_length}", "lora={}", *args.set])
    search, grid = run_both(args, fixed, budget)
    limit = search.limit
    fitting = [t for t in grid if t.fits(limit)]
    grid_best = max(fitting, key=lambda t: t.speed, default=None)
    best = search.best
    if grid_best is None or best is None:
        print(f"nothing fits the budget: grid best {grid_best}, fit best {best}")
        return 1
    print(f"records: {args.out}")
    print("grid, fastest first (tokens/s, peak RSS):")
    for t in sorted(grid, key=lambda t: -(t.speed or 0)):
        fits = "fits" if t.fits(limit) else "over the budget" if t.status == "ok" else t.status
        print(f"  {t.speed or 0:8,.1f}  {(t.footprint_bytes or 0) / 1e9:5.2f} GB  {fits:16}  {settings_label(t.settings)}")
    gap = best.speed / grid_best.speed - 1
    print(f"grid: {len(grid)} cases, best {grid_best.speed:,.1f} tokens/s at {settings_label(grid_best.settings)}")
    print(f"fit:  {search.searched} cases ({search.searched / len(grid):.0%} of the grid), best "
          f"{best.speed:,.1f} tokens/s at {settings_label(best.settings)} ({gap:+.1%} vs the grid's best, "
          "each from its own run)")
    ratios: list[float] = []
    if best.settings == grid_best.settings:
        print("both picked the same configuration: the gap is 0 by construction")
        gap = 0.0
    elif args.rounds:
        speeds = head_to_head(args, fixed, budget, {"fit": best.settings, "grid": grid_best.settings})
        ratios = [f / g for f, g in zip(speeds["fit"], speeds["grid"])]
        gap = float(np.median(ratios)) - 1
        print(f"head to head, {args.rounds} alternating rounds: fit's pick {np.median(speeds['fit']):,.1f} vs "
              f"the grid's {np.median(speeds['grid']):,.1f} tokens/s, median ratio {gap + 1:.3f} "
              f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)})")
    speed = "met" if gap >= -TOLERANCE else "NOT met"
    if ratios and stats.straddles(ratios, 1 - TOLERANCE) == "cannot tell":
        speed = (f"cannot tell: the rounds straddle −{TOLERANCE:.0%} ({min(ratios):.3f} … {max(ratios):.3f}); "
                 "more --rounds or a quieter machine")
    cases = "met" if search.searched <= len(grid) / 2 else "NOT met"
    print(f"acceptance: within {TOLERANCE:.0%} of the grid's best: {speed}; at most half its cases: {cases}")
    return 0 if speed == cases == "met" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
