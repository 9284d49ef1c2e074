"""mlxbench: benchmarking and memory profiling for MLX.

Importing mlxbench first loads an optimized BLAS for MLX's Linux CPU backend
(see mlxbench.blas); it must happen before ``mlx.core`` is imported.
"""

from mlxbench import blas as _blas

_blas.load()

__version__ = "0.1.0"


def profile_memory(interval_s: float = 0.01):
    """Profile the memory of a block of code: ``with mlxbench.profile_memory() as prof: ...``."""
    from mlxbench.profiler import profile_memory as _profile_memory

    return _profile_memory(interval_s=interval_s)
