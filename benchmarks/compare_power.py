"""How often does `mlxbench compare` see a real slowdown, and how often does it cry wolf?

Each trial runs one case of a suite (by default the quick training-memory baseline) as a base run, an
identical rerun, and one rerun per slowdown size in which the case does more work: its sequence
(``--param``, default seq_length) longer by that fraction. compare's step-time verdict (the same
`results.compare.judge` the command uses: Mann–Whitney p < 0.01 and a change past the threshold) is
then read for each pair: on the identical rerun any verdict but "same" is a false alarm; on a slower
rerun "regression" is a detection. A longer sequence is not exactly that much slower, so each size's
real slowdown is measured too: the median over trials of (slower median step time / base's − 1).

Runs go through the real CLI, one process per case (``--rounds`` interleaved rounds where asked), so
the figures are what a user's `mlxbench run` + `mlxbench compare` would give on this machine.

    .venv/bin/python benchmarks/compare_power.py [--trials 20] [--rounds 1] [--set repeat=5 …]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

import mlxbench  # noqa: F401  (the BLAS before mlx.core)
from mlxbench.machine import env
from mlxbench.results.compare import DEFAULT_THRESHOLD_PCT, judge
from mlxbench.results.metrics import STEP_TIME, value_of
from mlxbench.results.record import latest_by_case
from mlxbench.results.run import load_run

ROOT = Path(__file__).resolve().parent.parent


def run_case(args, out: Path, value: int) -> dict | None:
    """One `mlxbench run` of the case with ``--param`` set to ``value``: the case's figures, or None (said on
    stderr) when the case did not finish: the trial goes on, that pair counted as not judged."""
    out.mkdir(parents=True)
    command = [sys.executable, "-m", "mlxbench", "run", args.suite, "--profile", args.profile, "--only",
               args.variant, "--no-calibrate", "--out", str(out), "--rounds", str(args.rounds),
               "--set", f"{args.param}={value}", *args.sets]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    records = [r for run_dir in out.glob("*/*") for r in latest_by_case(load_run(run_dir).records)]
    if done.returncode != 0 or len(records) != 1 or not records[0].ok:
        print(f"compare_power: not judged: {' '.join(command)} ended {done.returncode}: "
              f"{(done.stdout + done.stderr).strip().splitlines()[-3:]}", file=sys.stderr)
        return None
    return records[0].metrics


def trial(args, base_value: int, folder: Path, index: int) -> dict:
    """One trial: per size (0: the identical rerun), compare's step-time verdict and the measured slowdown;
    ("not judged", None) where a run did not finish."""
    base = run_case(args, folder / "base", base_value)
    out = {}
    sizes = [0.0, *args.slowdowns]
    turn = index % len(sizes)  # the reruns' order rotates from trial to trial: none always runs right after base
    for size in sizes[turn:] + sizes[:turn]:
        new = None if base is None else run_case(args, folder / f"new-{size:g}", round(base_value * (1 + size)))
        if new is None:
            out[size] = ("not judged", None)
            continue
        verdict = judge(STEP_TIME, base, new, args.threshold / 100)["verdict"]
        out[size] = (verdict, value_of(new["step_time_s"]) / value_of(base["step_time_s"]) - 1)
    return out


def _wilson(hits: int, n: int) -> str:
    """The Wilson score interval of a rate of ``hits`` in ``n``: what so few trials can and cannot show."""
    interval = binomtest(hits, n).proportion_ci(confidence_level=0.95, method="wilson")
    return f"{interval.low:.0%}–{interval.high:.0%}"


def table(results: list[dict], sizes: list[float], param: str) -> list[str]:
    """The power table: per size, the measured slowdown and how often compare flagged it, over the trials
    judged (a run that did not finish is counted apart)."""
    lines = ["| change asked | slowdown measured (median) | compare flags it | trials judged (not judged) |",
             "|---|---|---|---|"]
    for size in (0.0, *sizes):
        judged = [r[size] for r in results if r[size][1] is not None]
        n, missing = len(judged), len(results) - len(judged)
        measured = f"{float(np.median([d for _, d in judged])):+.1%}" if judged else "not measured"
        if size == 0:
            hits, what = sum(v != "same" for v, _ in judged), "false alarms"
        else:
            hits, what = sum(v == "regression" for v, _ in judged), "detected"
        rate = f"{what} {hits}/{n} ({hits / n:.0%}, 95% CI {_wilson(hits, n)})" if n else "cannot tell"
        asked = "none (identical rerun)" if size == 0 else f"+{size:.0%} {param}"
        lines.append(f"| {asked} | {measured} | {rate} | {n} ({missing}) |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="suites/training-memory.yaml")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--variant", default="baseline")
    parser.add_argument("--param", default="seq_length", help="the integer parameter the slowdown lengthens")
    parser.add_argument("--base-value", type=int, default=128, help="its value in the base run")
    parser.add_argument("--slowdowns", type=float, nargs="+", default=[0.05, 0.10, 0.25])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD_PCT, metavar="PCT")
    parser.add_argument("--set", dest="sets", nargs="+", default=[], metavar="KEY=VALUE",
                        help="passed on to mlxbench run (e.g. repeat=8 warmup=1)")
    args = parser.parse_args(argv)
    args.sets = [x for s in args.sets for x in ("--set", s)]
    results = []
    with tempfile.TemporaryDirectory(prefix="mlxbench-power-") as tmp:
        for i in range(args.trials):
            results.append(trial(args, args.base_value, Path(tmp) / f"trial-{i}", i))
            print(f"trial {i + 1}/{args.trials}: " + ", ".join(
                f"{'identical' if s == 0 else f'+{s:.0%}'} {v}" + (f" ({d:+.1%})" if d is not None else "")
                for s, (v, d) in sorted(results[-1].items())),
                flush=True)
    device = env.mlx_device()
    print(f"\nmachine: {env.cpu_name()}, {device['backend']} backend, mlx {device['version']}, {date.today()}")
    print(f"case: {args.suite} --profile {args.profile} --only {args.variant!r}, {args.param} {args.base_value}, "
          f"rounds {args.rounds}, {' '.join(args.sets[1::2]) or 'the profile settings'}; "
          f"compare --threshold {args.threshold:g}")
    print("\n".join(table(results, args.slowdowns, args.param)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
