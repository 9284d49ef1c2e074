"""The optimized BLAS against the mlx wheel's reference BLAS, each in a fresh process.

Prints the fp32 matmul GFLOP/s of both (``mlxbench env``'s calibration) and
exits 1 when the optimized one is under 50 GFLOP/s on a Linux CPU backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

TARGET_GFLOPS = 50.0


def measure(blas_choice: str | None) -> dict:
    environ = dict(os.environ)
    environ.pop("MLXBENCH_BLAS", None)
    if blas_choice:
        environ["MLXBENCH_BLAS"] = blas_choice
    out = subprocess.run([sys.executable, "-m", "mlxbench", "env", "--json"], env=environ,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> int:
    optimized, reference = measure(None), measure("bundled")
    for label, env in (("loaded by mlxbench", optimized), ("mlx wheel (bundled)", reference)):
        cal = env["calibration"]
        print(f"{label:22s} {env['blas']['name'][:48]:48s} matmul {cal['matmul_fp32_gflops']:7.1f} GFLOP/s  "
              f"read bandwidth {cal['memory_read_gbps']:5.1f} GB/s")
    fast = optimized["calibration"]["matmul_fp32_gflops"]
    slow = reference["calibration"]["matmul_fp32_gflops"]
    print(f"speed-up: {fast / slow:.0f}x on {optimized['cpu']['name']} "
          f"({optimized['cpu']['logical_cores']} cores), MLX {optimized['mlx']['version']} "
          f"{optimized['mlx']['backend']} backend")
    if optimized["mlx"]["backend"] == "CPU" and sys.platform.startswith("linux") and fast < TARGET_GFLOPS:
        print(f"FAIL: {fast:.1f} GFLOP/s is under the {TARGET_GFLOPS:.0f} GFLOP/s target")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
