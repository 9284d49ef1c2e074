"""fp32 matmul on MLX's default device: the BLAS every training and generation step leans on."""

import mlx.core as mx
import pytest


@pytest.mark.parametrize("n", [256, 512])
def test_matmul_fp32(benchmark, n):
    a = mx.random.normal((n, n), key=mx.random.key(0))
    b = mx.random.normal((n, n), key=mx.random.key(1))
    mx.eval(a, b)
    # mx.eval inside the timed call: MLX is lazy, the product must be computed, not just built.
    benchmark.pedantic(lambda: mx.eval(a @ b), rounds=20, warmup_rounds=3)
    benchmark.extra_info.update(params={"n": n, "dtype": "float32"})
