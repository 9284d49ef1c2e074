"""Does mlxbench's generation kernel measure what ``mlx_lm benchmark`` measures, and is it as fast?

Writes a preset as a local model directory, then runs on it, with the same prompt and
generation lengths: mlx-lm's own benchmark (``mlx_lm.benchmark.main``, the command behind
``python -m mlx_lm benchmark --model DIR -p P -g G``) and mlxbench's ``generate`` workload.
Each measurement is a fresh process; the two sides alternate, round after round, so drifts
in machine load hit both. Every process imports mlxbench before MLX, so both sides run on
the same BLAS (a plain ``python -m mlx_lm benchmark`` on Linux runs on the mlx wheel's
reference BLAS, ~50x slower at matmul), and each prints the BLAS it used.

    .venv/bin/python benchmarks/generate_vs_mlx_lm.py [--model small] [-p 256] [-g 128] [--rounds 3]
        [--depths 0,1024,4096]

Both sides count as mlx-lm counts: prefill tokens/s is prompt tokens over the time to the
first generated token, decode tokens/s is generated tokens over the time from the first to
the last. The figure of each side is the median over all its trials.

Exit status 1 when the two disagree by more than --tolerance (5%), when mlxbench is slower
than mlx-lm by more than the noise (the wider half-spread, p10–p90, of the two), or when
that noise is itself wider than the tolerance, so agreement cannot be shown.

``--depths``: mlx-lm's benchmark has no context depth, so deeper contexts are mlxbench's alone:
its ``tg`` test (decode only, llama-bench's) at each depth, in fresh processes, alternating
depths round after round. Exit status 1 unless decode falls as the depth grows (each deeper
median below the shallower one) and every record's ``n_depth`` says the depth asked for.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import mlxbench  # noqa: F401  (before mlx: the optimized BLAS for MLX's CPU backend)
from mlxbench import stats

SIDES = ("mlx-lm", "mlxbench")
TRIAL = re.compile(r"Trial \d+:\s+prompt_tps=([\d.]+), generation_tps=([\d.]+)")


def measure_mlx_lm(args) -> dict[str, list[float]]:
    """mlx-lm's benchmark command, run unchanged in this process; its per-trial lines parsed."""
    import contextlib
    import io

    from mlx_lm.benchmark import main as mlx_lm_benchmark

    sys.argv = ["mlx_lm.benchmark", "--model", args.model_dir, "-p", str(args.prompt_tokens),
                "-g", str(args.generation_tokens), "-n", str(args.trials)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        mlx_lm_benchmark()
    trials = TRIAL.findall(printed.getvalue())
    if len(trials) != args.trials:
        sys.exit(f"could not read mlx-lm's trials from its output:\n{printed.getvalue()}")
    return {"prefill": [float(p) for p, _ in trials], "decode": [float(g) for _, g in trials]}


def measure_mlxbench(args) -> dict[str, list[float]]:
    """mlxbench's generate workload, one warm-up generation then ``trials`` timed ones, like mlx-lm."""
    from mlxbench.workloads.generate import Generate

    params = {**Generate.defaults(), "model": args.model_dir, "prompt_tokens": args.prompt_tokens,
              "generation_tokens": args.generation_tokens}
    workload = Generate(params, seed=0)
    workload.setup()
    workload.step()
    steps = [workload.step() for _ in range(args.trials)]
    return {"prefill": [args.prompt_tokens / s["ttft_s"] for s in steps],
            "decode": [args.generation_tokens / s["decode_s"] for s in steps]}


def measure_depth(args) -> dict[str, list[float]]:
    """mlxbench's tg test at ``args.depth``, through the measurement loop every case runs in."""
    from mlxbench.run import measure as loop
    from mlxbench.workloads.generate import Generate

    params = {**Generate.defaults(), "model": args.model_dir, "test": "tg", "depth": args.depth,
              "generation_tokens": args.generation_tokens}
    figures = loop.measure(Generate(params, seed=0), warmup=1, repeat=args.trials).metrics
    return {"decode": [args.generation_tokens / s for s in figures["decode_s"]["samples"]],
            "n_depth": figures["n_depth"]}


def child(args) -> None:
    from mlxbench.machine import blas

    if args.depth is not None:
        rates = measure_depth(args)
    else:
        rates = (measure_mlx_lm if args.side == "mlx-lm" else measure_mlxbench)(args)
    print("RESULT " + json.dumps({**rates, "blas": blas.load().name}))


def run_side(args, side: str, depth: int | None = None) -> dict:
    command = [sys.executable, __file__, "--side", side, "--model-dir", args.model_dir,
               "-p", str(args.prompt_tokens), "-g", str(args.generation_tokens), "--trials", str(args.trials)]
    command += [] if depth is None else ["--depth", str(depth)]
    out = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        sys.exit(f"{side} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def half_spread(values: list[float]) -> float:
    """(p90 − p10) / 2 relative to the median: how far one trial strays."""
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    return (deciles[-1] - deciles[0]) / 2 / statistics.median(values)


def compare(args) -> int:
    print(f"{args.model_dir}: prompt {args.prompt_tokens} tokens, {args.generation_tokens} generated, "
          f"batch 1, float32, greedy; {args.rounds} rounds × {args.trials} trials after 1 warm-up per process")
    rates = {(side, phase): [] for side in SIDES for phase in ("prefill", "decode")}
    for round_index, side in stats.alternating(list(SIDES), args.rounds):
        result = run_side(args, side)
        for phase in ("prefill", "decode"):
            rates[side, phase] += result[phase]
        print(f"  round {round_index} {side:9s} prefill {statistics.median(result['prefill']):9.1f} "
              f"tokens/s, decode {statistics.median(result['decode']):8.1f} tokens/s  "
              f"(BLAS: {result['blas']})", flush=True)
    failed = False
    for phase in ("prefill", "decode"):
        ours, theirs = statistics.median(rates["mlxbench", phase]), statistics.median(rates["mlx-lm", phase])
        ratio = ours / theirs
        noise = max(half_spread(rates[side, phase]) for side in SIDES)
        verdict = "ok"
        if noise > args.tolerance:
            # A busy machine: a 5% difference cannot be told from chance; nothing is shown either way.
            verdict = f"TOO NOISY to judge (noise ±{noise:.1%} > {args.tolerance:.0%}): rerun on a quiet machine"
        elif abs(ratio - 1) > args.tolerance:
            verdict = f"DISAGREE by more than {args.tolerance:.0%}"
        elif ratio < 1 - noise:
            verdict = f"SLOWER than mlx-lm beyond the noise (±{noise:.1%})"
        failed |= verdict != "ok"
        print(f"{phase:7s}: mlxbench {ours:9.1f} tokens/s, mlx-lm {theirs:9.1f} tokens/s, "
              f"ratio {ratio:.3f} (noise ±{noise:.1%}): {verdict}")
    return 1 if failed else 0


def compare_depths(args) -> int:
    """mlxbench's decode (tg) at each depth: does it fall as the context deepens?"""
    depths = sorted(args.depths)
    print(f"decode only (tg{args.generation_tokens}) at depths {', '.join(map(str, depths))}: "
          f"{args.rounds} rounds × {args.trials} trials, alternating")
    rates: dict[int, list[float]] = {d: [] for d in depths}
    failed = False
    for _, depth in stats.alternating(list(depths), args.rounds):
        result = run_side(args, "mlxbench", depth)
        rates[depth] += result["decode"]
        if result["n_depth"] != depth:
            print(f"  the record's n_depth is {result['n_depth']}, not {depth}")
            failed = True
    medians = [statistics.median(rates[d]) for d in depths]
    for depth, median in zip(depths, medians):
        print(f"  tg{args.generation_tokens} @ d{depth}: {median:8.1f} tokens/s (noise ±{half_spread(rates[depth]):.1%})")
    falling = all(deeper < shallower for shallower, deeper in zip(medians, medians[1:]))
    print(f"decode {'falls' if falling else 'does NOT fall'} as the depth grows")
    return 1 if failed or not falling else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small", help="preset written to a temporary model directory")
    parser.add_argument("--model-dir", help="a local model directory instead of a preset")
    parser.add_argument("-p", "--prompt-tokens", type=int, default=256)
    parser.add_argument("-g", "--generation-tokens", type=int, default=128)
    parser.add_argument("--trials", type=int, default=3, help="timed generations per process (mlx-lm's -n)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tolerance", type=float, default=0.05, help="largest relative disagreement")
    parser.add_argument("--depths", type=lambda text: [int(d) for d in text.split(",")], default=None,
                        help="also: mlxbench's decode at these context depths (comma-separated), e.g. 0,1024,4096")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--depth", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        child(args)
        return 0
    if args.model_dir:
        return both(args)
    from mlxbench.workloads import models

    with tempfile.TemporaryDirectory(prefix="mlxbench-generate-") as tmp:
        args.model_dir = str(models.write_model_dir(args.model, Path(tmp) / args.model, seed=0))
        return both(args)


def both(args) -> int:
    status = compare(args)
    if args.depths:
        status = max(status, compare_depths(args))
    return status


if __name__ == "__main__":
    sys.exit(main())
