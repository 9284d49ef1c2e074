"""``mlxbench fit`` against an exhaustive grid over the same axes: does the search find (within 3%)
the grid's best tokens/s while running at most half as many cases?

Both measure every candidate the same way: a worker process per case, the budget as its memory
limit, ``--warmup``/``--repeat`` steps. The grid runs every (gradient checkpointing, micro-batch
size, batch size) the search may pick, up to ``--max-batch``; the search runs what it needs.
Run on a quiet machine; the figure for the README is the two lines it prints at the end:

    PYTHONPATH=$PWD .venv/bin/python benchmarks/fit_vs_grid.py --budget 1.2GB --seq-length 256 --max-batch 16

(``--quick`` runs a short version: tiny model, small grid, to check the script works.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from types import SimpleNamespace

import mlxbench  # noqa: F401  (BLAS before mlx.core)
from mlxbench.commands.fit import Measurer, estimator, fixed_settings, make_suite, parse_budget
from mlxbench.run import advisor
from mlxbench.run.rundir import open_run_dir, record_environment


def grid_settings(families: list[dict], max_batch: int) -> list[dict]:
    return [{**f, "batch_size": b} for f in families for b in advisor.family_batches(f, max_batch)]


def run_both(args) -> tuple[advisor.Search, list[advisor.Trial]]:
    budget = parse_budget(args.budget)
    fixed = fixed_settings("train", args.model, [f"seq_length={args.seq_length}", "lora={}", *args.set])
    space = advisor.SPACES["train"]
    families = advisor.families_for(space, fixed)
    out = args.out or tempfile.mkdtemp(prefix="mlxbench-fit-vs-grid-")
    results = {}
    for kind in ("fit", "grid"):
        suite_args = SimpleNamespace(workload="train", model=args.model, warmup=args.warmup, repeat=args.repeat,
                                     timeout=args.timeout)
        suite = make_suite(suite_args, fixed, budget)
        suite.name = f"{suite.name}-{kind}"
        with open_run_dir(suite, out, None) as run_dir:
            env_id = record_environment(run_dir, calibrate=False)
            measurer = Measurer(suite, run_dir, env_id, space.objective)
            search = advisor.Search(space, families, budget, args.margin, estimator("train", fixed, env_id),
                                    measurer, max_batch=args.max_batch)
            if kind == "fit":
                search.run()
                results[kind] = search
            else:
                results[kind] = [measurer(s) for s in grid_settings(families, args.max_batch)]
    return results["fit"], [t for t in results["grid"]]


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
    parser.add_argument("--out", default=None, help="results root (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="tiny model, small grid: checks the script runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.seq_length, args.max_batch, args.repeat, args.budget = "tiny", 32, 4, 1, "1GB"
    search, grid = run_both(args)
    limit = search.limit
    fitting = [t for t in grid if t.fits(limit)]
    grid_best = max(fitting, key=lambda t: t.speed, default=None)
    best = search.best
    if grid_best is None or best is None:
        print(f"nothing fits the budget: grid best {grid_best}, fit best {best}")
        return 1
    gap = best.speed / grid_best.speed - 1
    print(f"grid: {len(grid)} cases, best {grid_best.speed:,.1f} tokens/s at {grid_best.settings}")
    print(f"fit:  {search.searched} cases ({search.searched / len(grid):.0%} of the grid), best "
          f"{best.speed:,.1f} tokens/s at {best.settings} ({gap:+.1%} vs the grid's best)")
    ok = gap >= -0.03 and search.searched <= len(grid) / 2
    print("acceptance (within 3% of the grid's best, at most half its cases):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
