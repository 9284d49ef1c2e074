"""``mlxbench env``: the machine, backend, BLAS and versions every run records, with a calibration."""

from __future__ import annotations

import json

from mlxbench.machine import blas
from mlxbench.machine.env import all_notes, capture
from mlxbench.results.metrics import busy_machine_share


def format_text(env: dict) -> str:
    gib = env["memory_total_bytes"] / 2**30
    mx_ = env["mlx"]
    blas_ = env["blas"]
    lines = [
        f"OS              {env['os']['platform']}",
        f"CPU             {env['cpu']['name']} ({env['cpu']['physical_cores']} physical / "
        f"{env['cpu']['logical_cores']} logical cores)",
        f"Memory          {gib:.1f} GiB",
        f"MLX             {mx_['version']} on {mx_['device']} ({mx_['backend']} backend)",
        f"mlx-lm          {env['mlx_lm']['version']}",
        f"Python          {env['python']}",
        f"BLAS            {blas_['name']}{'' if blas_['optimized'] else '  <-- NOT OPTIMIZED'}"
        + (f" ({blas_['threads']} threads)" if blas_.get("threads") else ""),
        f"mlxbench        {env['mlxbench']['version']} (git {env['mlxbench']['git_sha'] or 'n/a'})",
        f"env id          {env['env_id']}",
    ]
    lines += [f"Note            {note}" for note in all_notes(env)]
    if cal := env.get("calibration"):
        lines += [
            "Calibration (measured now):",
            f"  compute peak     {cal['matmul_fp32_gflops']:.1f} GFLOP/s  ({cal['matmul_method']})",
            f"  read bandwidth   {cal['memory_read_gbps']:.1f} GB/s  ({cal['memory_read_method']})",
        ]
        if busy_machine_share(cal):
            lines.append(f"  BUSY MACHINE: other processes took {cal['other_processes_cpu_share']:.0%} of the CPU "
                         f"while calibrating: both ceilings read low")
    return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--no-calibrate", action="store_true", help="skip the matmul/bandwidth measurement")


def main(args) -> int:
    blas.warn_if_reference()
    env = capture(calibrate=not args.no_calibrate)
    print(json.dumps(env, indent=2) if args.json else format_text(env))
    return 0
