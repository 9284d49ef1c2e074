"""A square matrix product: the smallest real workload, and the BLAS every model step leans on.

It lets the runner be tested end to end on real MLX in seconds; ``suites/smoke.yaml``
uses it to check a machine's set-up before the long suites.
"""

from __future__ import annotations

import mlx.core as mx

from mlxbench.results.metrics import PEAK_MEMORY, STEP_TIME, Metric, rate
from mlxbench.workloads.base import Param, Workload, register

DTYPES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}
# Compiling a lone matmul changes no arithmetic, so results agree to float rounding
# of the checksum's own summation (float32: ~1e-6; half precision: a few ulps).
RTOL = {"float32": 1e-5, "float16": 1e-2, "bfloat16": 5e-2}


@register
class Matmul(Workload):
    name = "matmul"
    description = "C = A @ B for n×n matrices of seeded random numbers"
    params = (
        Param("n", int, 256, minimum=1, help="rows and columns of each matrix"),
        Param("dtype", str, "float32", choices=tuple(DTYPES), help="element type"),
        Param("compile", bool, False, help="run the product through mx.compile"),
    )
    equivalent_params = frozenset({"compile"})
    declares = (
        PEAK_MEMORY,
        STEP_TIME,
        rate("gflop_per_s", "GFLOP/s", of="step_time_s", unit="GFLOP/s"),
        Metric("flops_per_step", "GFLOP/step", "GFLOP", scale=1e9, column=False),
    )
    headline = ("step_time_s", "gflop_per_s", "peak_memory_bytes")
    timed_phase = "matmul"

    def setup(self) -> None:
        n, dtype = self.p["n"], DTYPES[self.p["dtype"]]
        key_a, key_b = mx.random.split(mx.random.key(self.seed))
        self.a = mx.random.normal((n, n), key=key_a).astype(dtype)
        self.b = mx.random.normal((n, n), key=key_b).astype(dtype)
        mx.eval(self.a, self.b)
        self.product = mx.compile(mx.matmul) if self.p["compile"] else mx.matmul

    def step(self) -> None:
        mx.eval(self.product(self.a, self.b))

    def metrics(self, timed: dict[str, dict]) -> dict:
        flops = 2 * self.p["n"] ** 3
        return {"flops_per_step": flops, "gflop_per_s": flops / timed["step_time_s"]["median"] / 1e9}

    def equivalence(self) -> dict[str, float]:
        # Checksums of the product, taken after the timed steps so no step pays for them.
        c = self.product(self.a, self.b).astype(mx.float32)
        return {"checksum": mx.sum(c).item(), "abs_checksum": mx.sum(mx.abs(c)).item(),
                "rtol": RTOL[self.p["dtype"]]}

    def teardown(self) -> None:
        self.a = self.b = None
