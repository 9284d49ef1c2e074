"""Model loading: how long a model takes to load from safetensors and to quantize, and how
much memory and disk it takes.

One ``step()`` loads the model directory with mlx-lm's ``load_model`` (every weight
evaluated, so the bytes are really read) and, with ``quantization`` set, quantizes it
with MLX's affine quantization. A preset is first written to a temporary model directory
(untimed). Warm-up loads fill the operating system's page cache, so the timed loads read
from memory, not from the disk: the figure is the load's own work, not the disk's speed.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import mlx.core as mx

from mlxbench.workloads import models
from mlxbench.machine.profiler import MemorySampler
from mlxbench.results.metrics import PEAK_MEMORY, STEP_TIME, Metric, memory, timing
from mlxbench.workloads._shapes import shapes
from mlxbench.workloads.base import MemoryModel, Param, Workload, register
from mlxbench.workloads._model_params import MODEL_PARAM, QUANTIZATION_PARAMS, quantization_errors

# Fine enough to catch the peak of a load that takes tens of milliseconds.
RSS_SAMPLE_INTERVAL_S = 0.001


def safetensors_size_bytes(path: Path) -> int:
    """Bytes on disk of a model directory's weight files."""
    return sum(f.stat().st_size for f in path.glob("*.safetensors"))


def save_quantized(net, config: dict, bits: int, group_size: int, path: Path) -> Path:
    """Save a quantized model as a model directory mlx-lm can load back."""
    from mlx_lm.utils import save_config, save_model

    save_model(path, net)
    quantization = {"group_size": group_size, "bits": bits, "mode": "affine"}
    save_config({**config, "quantization": quantization, "quantization_config": quantization},
                config_path=path / "config.json")
    return path


def load_terms(p: dict) -> tuple[dict[str, int], dict[str, int]]:
    """(resident, terms) of a load case: the weights as loaded, and the quantized copy made from them."""
    model, dtype = p.get("model", "small"), p.get("dtype") or "float32"
    terms = {"quantized_copy": 0}
    if p.get("quantization") is not None:
        terms["quantized_copy"] = shapes(model, dtype, p["quantization"], p.get("group_size") or 64).weight_bytes
    return {"weights": shapes(model, dtype).weight_bytes}, terms


@register
class Load(Workload):
    name = "load"
    description = "Load a model from safetensors and quantize it: time, peak memory, size on disk"
    params = (
        MODEL_PARAM,
        *QUANTIZATION_PARAMS,
        Param("dtype", str, None, nullable=True, choices=tuple(models.DTYPES),
              help="dtype a preset is written in (null: float32); null for a local directory, "
                   "which loads in the dtype it was saved in"),
    )
    declares = (
        timing("load_time_s", "Load Time (s)", savings="Time Savings"),
        timing("quantize_time_s", "Quantize Time (s)"),
        memory("disk_size_bytes", "Disk Size (MB)", True, kind="size", note="exact"),
        memory("quantized_disk_size_bytes", "Quantized Size (MB)", True, kind="size", note="exact"),
        Metric("compression_ratio", "Compression (×)", better="higher"),
        memory("peak_load_rss_bytes", "Peak Load RSS (MB)", False, savings="Memory Savings",
               note="sampled: no spread to test a change against"),
        memory("peak_load_memory_bytes", "Peak Load Memory (MB)", True, note="MLX's exact peak"),
        replace(STEP_TIME, label="Load + Quantize (s)", column=False, savings=None),
        replace(PEAK_MEMORY, column=False, savings=None),
    )
    headline = ("load_time_s", "quantize_time_s", "peak_load_rss_bytes")
    timed_phase = "load"
    memory_model = MemoryModel(load_terms, {"quantized_copy": 1.0})
    search_space = None  # nothing to trade: a load is what it is

    @classmethod
    def check(cls, params: dict) -> list[tuple[str, str]]:
        errors = []
        if models.is_local(params["model"]) and params.get("dtype") is not None:
            errors.append(("dtype", "expected null for a local model directory (it loads in the dtype "
                                    f"it was saved in), got {params['dtype']!r}"))
        return errors + quantization_errors(params["model"], params.get("quantization"), params["group_size"])

    def setup(self) -> None:
        p = self.p
        self.tmp = Path(tempfile.mkdtemp(prefix="mlxbench-load-"))
        if models.is_local(p["model"]):
            self.path = Path(p["model"]).expanduser()
        else:
            self.path = models.write_model_dir(p["model"], self.tmp / "model", self.seed, p["dtype"] or "float32")
            mx.clear_cache()
        self.net = None
        self.config: dict = {}
        self.peak_load_rss_bytes = 0
        self.peak_load_memory_bytes = 0

    def step(self) -> dict[str, float]:
        from mlx_lm.utils import load_model

        p = self.p
        # The previous step's model goes first, so each load starts from the same memory.
        self.net = None
        mx.clear_cache()
        mx.reset_peak_memory()
        with MemorySampler(RSS_SAMPLE_INTERVAL_S) as sampler:
            start = time.perf_counter()
            self.net, self.config = load_model(self.path)
            mx.eval(self.net.parameters())
            loaded = time.perf_counter()
        self.peak_load_rss_bytes = max(self.peak_load_rss_bytes, sampler.peak_rss_bytes)
        self.peak_load_memory_bytes = max(self.peak_load_memory_bytes, mx.get_peak_memory())
        times = {"load_time_s": loaded - start}
        if p["quantization"] is not None:
            start = time.perf_counter()
            models.quantize(self.net, p["quantization"], p["group_size"])  # evaluates the weights
            times["quantize_time_s"] = time.perf_counter() - start
        return times

    def metrics(self, timed: dict[str, dict]) -> dict[str, Any]:
        p = self.p
        figures = {
            "disk_size_bytes": safetensors_size_bytes(self.path),
            # The process's RSS at its highest while a load ran (not the growth the load caused).
            "peak_load_rss_bytes": self.peak_load_rss_bytes,
            "peak_load_memory_bytes": self.peak_load_memory_bytes,
        }
        if p["quantization"] is not None and self.net is not None:
            saved = save_quantized(self.net, self.config, p["quantization"], p["group_size"], self.tmp / "quantized")
            figures["quantized_disk_size_bytes"] = safetensors_size_bytes(saved)
            figures["compression_ratio"] = figures["disk_size_bytes"] / figures["quantized_disk_size_bytes"]
        return figures

    def teardown(self) -> None:
        self.net = None
        shutil.rmtree(self.tmp, ignore_errors=True)
