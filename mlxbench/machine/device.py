"""Which MLX device a measurement runs on, when the default GPU cannot be trusted.

Hosted macOS CI runners expose a virtual Metal GPU ("Apple Paravirtual device"):
MLX reports Metal as available, but kernels may abort, hang or return wrong
values there, and its timings mean nothing. There, and where a Mac has no Metal
device, mlxbench measures on MLX's CPU device and every environment says why.
"""

from __future__ import annotations

import contextlib
import os
import sys

VIRTUAL_GPU_NAMES = ("Paravirtual",)
DEVICE_ENV = "MLXBENCH_DEVICE"  # "cpu" or "gpu": override the automatic choice

_NOTES: list[str] | None = None


def device_fallback(platform: str, default_is_gpu: bool, metal_available: bool, gpu_name: str,
                    wanted: str = "") -> str | None:
    """Why MLX should measure on its CPU device instead of its default one, or None to keep it.

    ``wanted`` is ``MLXBENCH_DEVICE``: "cpu" always falls back, "gpu" never does.
    """
    wanted = wanted.strip().lower()
    if wanted == "cpu":
        return f"{DEVICE_ENV}=cpu: measuring on MLX's CPU device"
    if wanted == "gpu" or not default_is_gpu or platform != "darwin":
        return None
    if not metal_available:
        return "no Metal device: measuring on MLX's CPU device"
    if any(word in gpu_name for word in VIRTUAL_GPU_NAMES):
        return (f"Metal device {gpu_name!r} is a virtual GPU (hosted CI runner): measuring on MLX's "
                f"CPU device; set {DEVICE_ENV}=gpu to use it anyway")
    return None


def _gpu_name(mx) -> str:
    for info in (getattr(mx, "device_info", None), getattr(mx.metal, "device_info", None)):
        with contextlib.suppress(Exception):  # renamed across MLX versions
            return str(info().get("device_name", ""))
    return ""


def choose() -> list[str]:
    """Move MLX to its CPU device when its GPU is missing or virtual; idempotent. Notes saying why."""
    global _NOTES
    if _NOTES is not None:
        return _NOTES
    import mlx.core as mx

    default_is_gpu = mx.default_device().type == mx.gpu
    metal_available = default_is_gpu and sys.platform == "darwin" and mx.metal.is_available()
    note = device_fallback(sys.platform, default_is_gpu, metal_available,
                           _gpu_name(mx) if metal_available else "", os.environ.get(DEVICE_ENV, ""))
    if note is not None:
        mx.set_default_device(mx.cpu)
    _NOTES = [note] if note else []
    return _NOTES
