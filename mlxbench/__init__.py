"""mlxbench: benchmarking and memory profiling for MLX.

Importing mlxbench before ``mlx.core`` gives MLX's Linux CPU backend an optimized
BLAS (see mlxbench.machine.blas). It is loaded when ``mlx.core`` is first imported,
not by ``import mlxbench`` itself, so a process that only reads or renders results
never loads a BLAS.
"""

import importlib.abc
import sys

__version__ = "0.1.0"


class _BlasBeforeMlx(importlib.abc.MetaPathFinder):
    """Loads the optimized BLAS just before ``mlx.core`` is imported, then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name == "mlx.core":
            sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _BlasBeforeMlx)]
            from mlxbench.machine import blas

            blas.load()
        return None  # the usual finders import the module itself


if "mlx.core" not in sys.modules and not any(isinstance(f, _BlasBeforeMlx) for f in sys.meta_path):
    sys.meta_path.insert(0, _BlasBeforeMlx())


def profile_memory(interval_s: float = 0.01):
    """Profile the memory of a block of code: ``with mlxbench.profile_memory() as prof: ...``."""
    from mlxbench.machine import blas
    from mlxbench.machine.profiler import profile_memory as _profile_memory

    blas.warn_if_reference()  # mlx.core imported first runs every matmul ~50x slower: say so, once
    return _profile_memory(interval_s=interval_s)
