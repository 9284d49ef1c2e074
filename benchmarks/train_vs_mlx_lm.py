"""Is mlxbench's reference training step as fast as mlx-lm's own LoRA trainer?

Runs mlx-lm's trainer loop (``mlx_lm.tuner.trainer.train``, the loop behind
``python -m mlx_lm lora``) and mlxbench's ``train`` workload on the same model, weights,
batch, sequence length and LoRA settings, with and without gradient checkpointing.
Each measurement is a fresh process; the two sides alternate, round after round, so
drifts in machine load hit both. Every process imports mlxbench before MLX, so both
sides run on the same BLAS (a plain ``python -m mlx_lm`` on Linux would not), and each
prints the BLAS it used.

    .venv/bin/python benchmarks/train_vs_mlx_lm.py [--model small] [--rounds 8] [--in-process]

Processes of one side differ by several percent on a shared virtual machine, and the
machine's speed drifts, so the figure is the median over rounds of each round's ratio
(mlxbench / mlx-lm, two processes run back to back), with a bootstrap 95% interval.
Exit status 1 unless that interval lies above 1 − tolerance (5%) with and without
gradient checkpointing: "SLOWER" when it lies below, "TOO NOISY" when it straddles.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

import mlxbench  # noqa: F401  (before mlx: the optimized BLAS for MLX's CPU backend)
from mlxbench import stats

SIDES = ("mlx-lm", "mlxbench")


def measure_mlx_lm(args) -> list[float]:
    """Per-step tokens/s of mlx-lm's trainer, as its own report callback gives them."""
    import mlx.optimizers as optim
    import numpy as np
    from mlx_lm.tuner.datasets import CacheDataset
    from mlx_lm.tuner.trainer import TrainingArgs, TrainingCallback, train
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from mlxbench.workloads import data
    from mlxbench.workloads import models

    class Rows:
        """Pre-tokenized rows of seq_length + 1 ids: the shape mlx-lm's datasets produce."""

        def __init__(self, rows):
            self.rows = rows

        def __len__(self):
            return len(self.rows)

        def __getitem__(self, i):
            return self.rows[i]

        def process(self, row):
            return row

    class Rates(TrainingCallback):
        def __init__(self):
            self.tokens_per_s = []

        def on_train_loss_report(self, info):
            self.tokens_per_s.append(info["tokens_per_second"])

    net, config = models.build(args.model, seed=0, dtype="float32")
    # What mlx_lm.lora's train_model does for fine_tune_type "lora".
    net.freeze()
    linear_to_lora_layers(net, args.lora_layers, {"rank": args.lora_rank, "scale": 20.0, "dropout": 0.0})
    batches = np.array(data.random_batches(config["vocab_size"], args.batch_size, args.seq_length, seed=0))
    rows = Rows(list(batches.reshape(-1, args.seq_length + 1)))
    rates = Rates()
    with tempfile.TemporaryDirectory() as tmp:
        train(net, optim.Adam(learning_rate=1e-5), CacheDataset(rows), None,
              TrainingArgs(batch_size=args.batch_size, iters=args.warmup + args.steps, steps_per_report=1,
                           steps_per_eval=10**9, steps_per_save=10**9, adapter_file=f"{tmp}/adapters.safetensors",
                           max_seq_length=args.seq_length + 1, grad_checkpoint=args.gc),
              training_callback=rates)
    return rates.tokens_per_s[args.warmup:]


def measure_mlxbench(args) -> list[float]:
    """Per-step tokens/s of mlxbench's train workload (the runner times steps the same way)."""
    from mlxbench.workloads.train import Train

    params = {**Train.defaults(), "model": args.model, "batch_size": args.batch_size,
              "seq_length": args.seq_length, "gradient_checkpointing": args.gc,
              "lora": {"rank": args.lora_rank, "layers": args.lora_layers, "scale": 20.0}}
    workload = Train(params, seed=0)
    workload.setup()
    for _ in range(args.warmup):
        workload.step()
    rates = []
    for _ in range(args.steps):
        start = time.perf_counter()
        workload.step()
        rates.append(args.batch_size * args.seq_length / (time.perf_counter() - start))
    return rates


def in_process(args) -> int:
    """mlx-lm's trainer step and mlxbench's, alternating step by step in one process.

    Separates the step's own speed from process-to-process spread: mlx-lm's step is
    rebuilt here the way its trainer builds it (value_and_grad of its default_loss, one
    graph compiled over model, optimizer and random state), since its train() loop cannot
    be interleaved with another.
    """
    from functools import partial

    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    import numpy as np
    from mlx_lm.tuner.trainer import default_loss
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from mlxbench.workloads import data
    from mlxbench.workloads import models
    from mlxbench.workloads.train import Train

    net, config = models.build(args.model, seed=0, dtype="float32")
    net.freeze()
    linear_to_lora_layers(net, args.lora_layers, {"rank": args.lora_rank, "scale": 20.0, "dropout": 0.0})
    net.train()
    optimizer = optim.Adam(learning_rate=1e-5)
    loss_and_grad = nn.value_and_grad(net, default_loss)
    state = [net.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def mlx_lm_step(batch, lengths):
        (loss, tokens), grads = loss_and_grad(net, batch, lengths)
        optimizer.update(net, grads)
        return loss, tokens

    batches = np.array(data.random_batches(config["vocab_size"], args.batch_size, args.seq_length, seed=0))
    lengths = mx.array([[0, args.seq_length + 1]] * args.batch_size)

    def theirs(i):
        loss, tokens = mlx_lm_step(mx.array(batches[i % len(batches)]), lengths)
        mx.eval(state, loss, tokens)
        if mx.get_cache_memory() > 0:  # its trainer's _clear_cache at the default threshold, 0
            mx.clear_cache()

    params = {**Train.defaults(), "model": args.model, "batch_size": args.batch_size,
              "seq_length": args.seq_length,
              "lora": {"rank": args.lora_rank, "layers": args.lora_layers, "scale": 20.0}}
    workload = Train(params, seed=0)
    workload.setup()
    sides = {"mlx-lm": theirs, "mlxbench": lambda i: workload.step()}
    rates = {name: [] for name in sides}
    for i in range(args.warmup):
        for step in sides.values():
            step(i)
    for i in range(args.steps * args.rounds):
        for name in stats.order_of_round(list(sides), i + 1):
            start = time.perf_counter()
            sides[name](i)
            rates[name].append(args.batch_size * args.seq_length / (time.perf_counter() - start))
    ours, theirs_ = statistics.median(rates["mlxbench"]), statistics.median(rates["mlx-lm"])
    print(f"in one process, steps alternating ({len(rates['mlxbench'])} each): mlxbench {ours:.1f} tokens/s, "
          f"mlx-lm's step {theirs_:.1f} tokens/s, ratio {ours / theirs_:.3f}")
    return 0


def child(args) -> None:
    from mlxbench.machine import blas

    rates = (measure_mlx_lm if args.side == "mlx-lm" else measure_mlxbench)(args)
    print("RESULT " + json.dumps({"tokens_per_s": rates, "blas": blas.load().name}))


def run_side(args, side: str, gc: bool) -> dict:
    command = [sys.executable, __file__, "--side", side, "--model", args.model,
               "--batch-size", str(args.batch_size), "--seq-length", str(args.seq_length),
               "--lora-rank", str(args.lora_rank), "--lora-layers", str(args.lora_layers),
               "--steps", str(args.steps), "--warmup", str(args.warmup)] + (["--gc"] if gc else [])
    out = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        sys.exit(f"{side} failed:\n{out.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def verdict(ratios: list[float], tolerance: float) -> tuple[float, float, float, str]:
    """Median of the per-round ratios, its 95% interval, and what they allow us to say."""
    ratio, low, high, where = stats.median_against(ratios, 1 - tolerance)
    if where == "above" or low == 1 - tolerance:
        return ratio, low, high, "at least as fast"
    if where == "below":
        return ratio, low, high, "SLOWER than mlx-lm beyond noise"
    return ratio, low, high, (f"TOO NOISY to judge (the interval reaches below {1 - tolerance:.2f}): "
                              "rerun with more --rounds on a quiet machine")


def compare(args) -> int:
    print(f"model {args.model}, batch {args.batch_size}, seq_length {args.seq_length}, "
          f"LoRA rank {args.lora_rank} on {args.lora_layers} layers, adam, float32; "
          f"{args.rounds} rounds × {args.steps} timed steps after {args.warmup} warm-up")
    results = {(side, gc): [] for side in SIDES for gc in (False, True)}
    ratios = {False: [], True: []}
    for round_index in range(args.rounds):
        order = stats.order_of_round(list(SIDES), round_index + 1)
        for gc in (False, True):
            medians = {}
            for side in order:
                rates = run_side(args, side, gc)
                results[side, gc].extend(rates["tokens_per_s"])
                medians[side] = statistics.median(rates["tokens_per_s"])
                print(f"  round {round_index + 1} {'GC   ' if gc else 'no GC'} {side:9s} "
                      f"{medians[side]:9.1f} tokens/s  (BLAS: {rates['blas']})", flush=True)
            ratios[gc].append(medians["mlxbench"] / medians["mlx-lm"])
    failed = False
    for gc in (False, True):
        ratio, low, high, said = verdict(ratios[gc], args.tolerance)
        failed |= said != "at least as fast"
        ours, theirs = (statistics.median(results[side, gc]) for side in ("mlxbench", "mlx-lm"))
        print(f"{'with' if gc else 'without'} gradient checkpointing: mlxbench {ours:.1f} tokens/s, "
              f"mlx-lm {theirs:.1f} tokens/s; per-round ratio median {ratio:.3f} "
              f"(95% CI {low:.3f} … {high:.3f}): {said}")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-length", type=int, default=256)
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--lora-layers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per measurement")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--tolerance", type=float, default=0.05, help="relative slack for noise")
    parser.add_argument("--in-process", action="store_true",
                        help="also alternate both steps in one process (no GC), to separate the "
                             "step's speed from process-to-process spread")
    parser.add_argument("--gc", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        child(args)
        return 0
    status = compare(args)
    if args.in_process:
        in_process(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
