"""Environment capture: what machine, backend, BLAS and versions a run measured.

``mlxbench env`` prints it; every run stores it as ``env.json`` and every record
carries its ``env_id``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import mlxbench
from mlxbench.machine import blas
from mlxbench.machine import device

# Fields that identify a machine + software stack (calibration figures vary run to run).
IDENTITY_FIELDS = ("os", "machine", "cpu", "memory_total_bytes", "mlx", "mlx_lm", "python", "blas")


def cpu_name() -> str:
    if sys.platform == "darwin":
        out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def mlx_device() -> dict:
    """MLX's default device and the backend behind it."""
    import mlx.core as mx

    device = mx.default_device()
    kind = "gpu" if device.type == mx.gpu else "cpu"
    if kind == "gpu" and mx.metal.is_available():
        backend = "Metal"
    elif kind == "gpu" and hasattr(mx, "cuda") and mx.cuda.is_available():
        backend = "CUDA"
    else:
        backend = "CPU"
    info = {}
    try:
        info = {k: v for k, v in mx.device_info().items() if isinstance(v, (str, int, float))}
    except Exception:  # older MLX or no device info on this backend
        pass
    return {"version": mx.__version__, "device": kind, "backend": backend, "device_info": info}


def git_sha() -> str | None:
    """The mlxbench checkout's commit (with -dirty when modified), if run from one."""
    root = Path(mlxbench.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "-q", "HEAD"],
            capture_output=True, text=True, timeout=5,
        )
        sha = head.stdout.strip() if head.returncode == 0 else ""
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (sha + ("-dirty" if dirty else "")) if sha else None


def _best_rate(work, amount: float, budget_s: float) -> float:
    """Best amount/second of ``work()`` over repeats that fit in about ``budget_s``."""
    work()  # warm-up: allocation, first dispatch
    best = 0.0
    deadline = time.perf_counter() + budget_s
    while True:
        start = time.perf_counter()
        work()
        elapsed = time.perf_counter() - start
        best = max(best, amount / elapsed)
        if time.perf_counter() + elapsed > deadline:
            return best


def measure_matmul_gflops(n: int = 1024, budget_s: float = 1.0) -> float:
    """Measured fp32 n×n matmul throughput of the default device, GFLOP/s."""
    import mlx.core as mx

    a = mx.random.normal((n, n), dtype=mx.float32)
    b = mx.random.normal((n, n), dtype=mx.float32)
    mx.eval(a, b)
    return _best_rate(lambda: mx.eval(a @ b), 2 * n**3, budget_s) / 1e9


# How each calibrated ceiling is measured, shown next to its figure.
MATMUL_METHOD = "best of repeated 1024×1024 fp32 matmuls (2·n³ FLOPs each)"
READ_METHODS = {
    "matvec": "a vector times a 256 MB fp32 matrix's transpose, as a Linear layer decodes (x @ W.T)",
    "gemv": "a 256 MB fp32 matrix times a vector (W @ x)",
    "sum": "a sum over a 256 MB fp32 array",
    "sum2": "two sums over the halves of a 256 MB fp32 array on two MLX streams at once (two threads reading)",
    "layers": "a vector times each of 64 4 MB fp32 matrices (256 MB in all), read one after another as decode "
              "reads a model's layers",
}


def measure_read_bandwidth_gbps(megabytes: int = 256, budget_s: float = 1.5) -> dict[str, float]:
    """Measured read bandwidth of the default device, GB/s, the way decode reads its weights.

    Each figure is bytes read once over the best time, every kernel reading ``megabytes`` in all (beyond
    the caches): a matrix–vector product (both orientations, on MLX's own threads: the Linear layer's
    ``x @ W.T`` is decode's), the same over layer-sized matrices one after another (decode reads a model
    that way, and the prefetchers see each matrix start anew), and a plain reduction, on one stream and
    on two at once (two threads). The ceiling is the best of them: a workload that reads faster than
    every one shows a kernel the calibration lacks. Nothing large is written, so unlike an elementwise
    copy no fresh output buffer's page faults are counted as traffic.
    """
    import mlx.core as mx

    n = int((megabytes * 2**20 // 4) ** 0.5)
    # What is read does not change how fast it is read (drawing 512 MB of normals took 3.6 s here), but
    # no two pages are alike: a hypervisor may merge identical pages, which would then read from cache.
    w = mx.arange(n * n, dtype=mx.float32).reshape(n, n)
    x = mx.random.normal((1, n), dtype=mx.float32)
    flat = w.reshape(-1)
    halves = (flat[: flat.size // 2], flat[flat.size // 2:])
    layers = [mx.arange(k * 2**20, (k + 1) * 2**20, dtype=mx.float32).reshape(1024, 1024)
              for k in range(megabytes // 4)]
    x_layer = mx.random.normal((1, 1024), dtype=mx.float32)
    mx.eval(w, x, flat, *halves, *layers, x_layer)
    streams = (mx.new_stream(mx.cpu), mx.new_stream(mx.cpu)) if mx.default_device() == mx.cpu else None

    def two_sums():
        sums = []
        for half, stream in zip(halves, streams or (None, None)):
            with mx.stream(stream or mx.default_stream(mx.default_device())):
                sums.append(mx.sum(half))
        mx.eval(*sums)

    work = {"matvec": lambda: mx.eval(x @ w.T), "gemv": lambda: mx.eval(w @ x[0]),
            "sum": lambda: mx.eval(mx.sum(flat)), "sum2": two_sums,
            "layers": lambda: mx.eval([x_layer @ layer.T for layer in layers])}
    read = {name: w.nbytes for name in work} | {"layers": sum(layer.nbytes for layer in layers)}
    share = budget_s / len(work)
    return {name: _best_rate(run, read[name], share) / 1e9 for name, run in work.items()}


def measure_ceilings() -> dict:
    """The two ceilings a roofline needs: compute peak and read bandwidth, each with how it was measured."""
    from mlxbench.machine.profiler import CpuContention

    contention = CpuContention().start()
    reads = measure_read_bandwidth_gbps()
    best = max(reads, key=reads.get)
    return {
        "measured": True,
        "matmul_fp32_gflops": round(measure_matmul_gflops(), 1),
        # A busy machine lowers both ceilings, and every share of them reads too high.
        "other_processes_cpu_share": contention.share(),
        "matmul_method": MATMUL_METHOD,
        "memory_read_gbps": round(reads[best], 1),
        "memory_read_method": f"best of {', '.join(f'{k} {v:.1f} GB/s' for k, v in reads.items())}: "
                              f"{READ_METHODS[best]}",
        "memory_read_by_method_gbps": {k: round(v, 2) for k, v in reads.items()},
    }


def capture(calibrate: bool = True) -> dict:
    """The environment of this process, as a JSON-able dict."""
    import psutil

    # A missing mlx-lm surfaces here, not mid-run; importing it whole (its tokenizer stack) took 0.9 s a run.
    if importlib.util.find_spec("mlx_lm") is None:
        raise ModuleNotFoundError("No module named 'mlx_lm': pip install mlx-lm")

    notes = list(device.choose())  # before anything measures: may move MLX to its CPU
    env = {
        "os": {"system": platform.system(), "release": platform.release(), "platform": platform.platform()},
        "machine": platform.machine(),
        "cpu": {
            "name": cpu_name(),
            "physical_cores": psutil.cpu_count(logical=False),
            "logical_cores": psutil.cpu_count(logical=True),
        },
        "memory_total_bytes": psutil.virtual_memory().total,
        "mlx": mlx_device(),
        "mlx_lm": {"version": _version("mlx-lm")},
        "python": platform.python_version(),
        "blas": blas.load().to_dict(),
        "mlxbench": {"version": mlxbench.__version__, "git_sha": git_sha()},
        "hostname": platform.node(),
        "captured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "notes": notes,
    }
    env["env_id"] = env_id(env)
    if calibrate:
        env["calibration"] = measure_ceilings()
    return env


def env_id(env: dict) -> str:
    """A short stable id of the machine + software stack."""
    identity = {k: env[k] for k in IDENTITY_FIELDS if k in env}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def all_notes(env: dict) -> list[str]:
    """What the environment says of itself: why a device was chosen, how the BLAS was loaded."""
    return [*(env.get("notes") or []), *((env.get("blas") or {}).get("notes") or [])]
