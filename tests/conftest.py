# mlxbench must be imported before mlx.core so MLX's CPU backend gets the optimized BLAS.
import mlxbench  # noqa: F401
