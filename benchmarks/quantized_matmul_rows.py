"""Does a quantized matmul get cheaper per row as rows are added, as a float matmul does?

Batched decode multiplies one row per sequence by each weight matrix. With BLAS, 4 rows
cost little more than 1; if MLX's quantized kernel on this device costs the same per row
whatever the batch, batching cannot raise decode throughput of a quantized model. This
times ``mx.quantized_matmul`` against the float matmul of the same weights at growing row
counts and prints microseconds per call and per row.

    .venv/bin/python benchmarks/quantized_matmul_rows.py [--in 512] [--out 1408] [--bits 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import mlxbench  # noqa: F401  (before mlx: the optimized BLAS for MLX's CPU backend)
import mlx.core as mx

from mlxbench.machine import env


def seconds_per_call(fn, calls: int, repeats: int = 5) -> float:
    """Median over ``repeats`` blocks of the mean time of one evaluated call."""
    mx.eval(fn())
    blocks = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            mx.eval(fn())
        blocks.append((time.perf_counter() - start) / calls)
    return statistics.median(blocks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in", dest="inputs", type=int, default=512, help="input features (small's hidden size)")
    parser.add_argument("--out", type=int, default=1408, help="output features (small's MLP width)")
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4, 8, 32])
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args(argv)

    mx.random.seed(0)
    weight = mx.random.normal((args.out, args.inputs))
    packed, scales, biases = mx.quantize(weight, group_size=args.group_size, bits=args.bits)
    device = env.mlx_device()
    print(f"machine: {env.cpu_name()}, {device['backend']} backend, mlx {device['version']}")
    print(f"weight {args.out}×{args.inputs}, {args.bits}-bit, group size {args.group_size}")
    print(f"{'rows':>5}  {'float32 µs':>11}  {'quantized µs':>13}  {'quantized µs/row':>17}  {'quantized / float':>17}")
    for rows in args.rows:
        x = mx.random.normal((rows, args.inputs))
        plain = seconds_per_call(lambda: x @ weight.T, args.calls)
        quantized = seconds_per_call(lambda: mx.quantized_matmul(
            x, packed, scales, biases, transpose=True, group_size=args.group_size, bits=args.bits), args.calls)
        print(f"{rows:5d}  {plain * 1e6:11.1f}  {quantized * 1e6:13.1f}  {quantized / rows * 1e6:17.1f}  "
              f"{quantized / plain:16.1f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
