"""The ``generate`` workload with ``framework: torch``: the same case in PyTorch, for an MLX/PyTorch ratio.

Same model (the Hugging Face ``transformers`` class for the config's ``model_type``), same
weights (a preset's MLX weights copied tensor by tensor; a local directory's safetensors),
same prompts, greedy decoding with a KV cache, end-of-sequence ignored, and the timing
definitions of the MLX path (``generate.py``):

- TTFT and prefill: the start of the generation (prefill) to the first generated token on
  the host; the prompt goes through in chunks of ``prefill_step_size``;
- decode: the first token to the last, ``generation_tokens`` over it as mlx-lm counts.

Each token is brought to the host as it is generated, as ``transformers``' own ``generate``
does (its stopping check) and as a streaming caller must.

Before anything is timed, the worker checks it measures the same model: MLX's and PyTorch's
next-token distributions over the first prompt must agree (mean KL below ``KL_TOLERANCE``),
or the case fails with the KL in its reason. On the CPU PyTorch runs with as many threads
as MLX's BLAS (mlxbench's OpenBLAS, which also takes PyTorch's BLAS calls in the worker), its
OpenMP threads sleep when idle (``OMP_WAIT_POLICY=PASSIVE``), and the record says which threads,
BLAS and wait policy it used.

This module must not import torch at import time: torch is the optional ``mlxbench[torch]``.
"""

from __future__ import annotations

import functools
import os
import re
import time
from typing import Any

import numpy as np

from mlxbench.machine import blas
from mlxbench.results.metrics import Metric, diagnostic, memory
from mlxbench.workloads import models
from mlxbench.workloads.base import Param, Workload
from mlxbench.workloads.tracker import Tracker
from mlxbench.workloads._generation_plan import prompt_token_ids

FRAMEWORKS = ("mlx", "torch")
DEVICES = ("auto", "cpu", "cuda", "mps")
INSTALL_HINT = "PyTorch is not installed: pip install 'mlxbench[torch]'"
# Mean KL(MLX ‖ PyTorch), nats per position, over the first prompt. Measured here on the same
# weights: ~1e-13 in float32, 1e-6 to 1e-4 in bfloat16/float16 (rounding in another order);
# another seed's weights give several nats.
KL_TOLERANCE = 0.02

FRAMEWORK_PARAMS = (
    Param("framework", str, "mlx", choices=FRAMEWORKS,
          help="mlx: mlx-lm's model; torch: the same model and weights in PyTorch (transformers), "
               "needs mlxbench[torch]"),
    Param("device", str, "auto", choices=DEVICES,
          help="PyTorch's device (framework: torch); auto: cuda, else mps, else cpu"),
)
TORCH_METRICS = (
    memory("torch_peak_memory_bytes", "PyTorch Peak Memory (MB)", False,
           note="PyTorch's own counter (CUDA, MPS; none on the CPU): not MLX's peak, not judged against it"),
    Metric("kl_vs_mlx", "KL vs MLX", better="lower", kind="quality",
           note="same weights in both frameworks: dtype rounding only"),
    Metric("top1_vs_mlx", "Top-1 Agreement with MLX", better="higher", kind="quality", column=False),
    diagnostic("torch_threads", "PyTorch Threads"),
    diagnostic("torch_blas", "PyTorch BLAS"),
    diagnostic("torch_device", "PyTorch Device"),
    diagnostic("torch_memory_counter", "PyTorch Memory Counter"),
    diagnostic("torch_omp_wait_policy", "PyTorch OMP_WAIT_POLICY"),
)


@functools.cache
def _torch_problem(device: str) -> str | None:
    """None if PyTorch imports and has ``device``, else the one-line reason."""
    try:
        import torch
    except ImportError:
        return INSTALL_HINT
    if device == "cuda" and not torch.cuda.is_available():
        return "expected 'auto', 'cpu' or an available device, got 'cuda' (PyTorch sees no CUDA GPU)"
    if device == "mps" and not torch.backends.mps.is_available():
        return "expected 'auto', 'cpu' or an available device, got 'mps' (PyTorch has no MPS here)"
    return None


MLX_ONLY_DEFAULTS = {"test": "pg", "depth": 0, "prompt_cache": None, "distributed": None,
                     "mlx_memory_limit_mb": None, "mlx_cache_limit_mb": None, "mlx_wired_limit_mb": None,
                     "clear_cache_threshold": None}


def torch_errors(params: dict) -> list[tuple[str, str]]:
    """(key, message) pairs for what ``framework: torch`` cannot do with ``params``."""
    if params.get("framework", "mlx") != "torch":
        if params.get("device", "auto") != "auto":
            return [("device", f"expected 'auto' with framework: mlx (MLX picks its own device), "
                               f"got {params['device']!r}")]
        return []
    errors = []
    if (problem := _torch_problem(params.get("device", "auto"))) is not None:
        errors.append(("framework" if problem == INSTALL_HINT else "device", problem))
    for key in ("quantization", "kv_bits"):
        if params.get(key) is not None:
            errors.append((key, f"expected null with framework: torch (PyTorch runs the model as "
                                f"built, MLX's quantization has no PyTorch twin), got {params[key]!r}"))
    # What the PyTorch side does not implement (yet): MLX's own settings, depth, prompt cache, ranks.
    for key, default in MLX_ONLY_DEFAULTS.items():
        if params.get(key, default) != default:
            errors.append((key, f"expected {default!r} with framework: torch (the PyTorch side runs "
                                f"pp+tg at depth 0 in one process), got {params[key]!r}"))
    if models.check_model(params["model"]) is None and "quantization" in models.config_of(params["model"]):
        errors.append(("model", f"expected a model in full precision with framework: torch, "
                                f"got {params['model']!r} (an MLX-quantized checkpoint)"))
    return errors


def pick_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else "cpu"


def torch_blas() -> str:
    """The BLAS PyTorch's matmuls call in this process.

    PyTorch's Linux wheel exports its MKL's ``sgemm_``; mlxbench's OpenBLAS, loaded globally
    before it, takes those calls: then both frameworks run on the same BLAS.
    """
    import ctypes

    import torch

    found = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    built = found.group(1) if found else "unknown"
    info = blas.load()
    if info.library:
        try:
            ours = ctypes.cast(ctypes.CDLL(info.library).sgemm_, ctypes.c_void_p).value
            first = ctypes.cast(ctypes.CDLL(None).sgemm_, ctypes.c_void_p).value
        except (OSError, AttributeError):
            return built
        if ours == first:
            return f"{info.name} (mlxbench's, in place of PyTorch's {built})"
    return built


def mlx_threads() -> int:
    """Threads MLX's CPU matmuls use: mlxbench's OpenBLAS's count, else the core count."""
    return blas.load().threads or os.cpu_count() or 1


def torch_model(model: str, config: dict, mlx_net, dtype: str, device: str):
    """The transformers model for ``config`` holding ``mlx_net``'s weights (a preset) or the directory's."""
    import torch
    import transformers
    from mlx.utils import tree_flatten

    torch_dtype = getattr(torch, dtype)
    if models.is_local(model):
        net = transformers.AutoModelForCausalLM.from_pretrained(
            os.path.expanduser(model), dtype=torch_dtype, attn_implementation="sdpa")
        return net.to(device).eval()
    # transformers' default context (2048) is below a llama3 RoPE's original one; MLX has no limit.
    hf_config = transformers.AutoConfig.for_model(**{"max_position_embeddings": 1 << 17, **config})
    hf_config._attn_implementation = "sdpa"
    net = transformers.AutoModelForCausalLM.from_config(hf_config, dtype=torch_dtype)
    import mlx.core as mx

    weights = {name: torch.from_numpy(np.array(value.astype(mx.float32))).to(torch_dtype)
               for name, value in tree_flatten(mlx_net.parameters())}
    missing, unexpected = net.load_state_dict(weights, strict=False)
    tied = {"lm_head.weight"} if hf_config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"MLX and transformers name the weights of {model} differently: "
                           f"missing {sorted(set(missing) - tied)[:3]}, unexpected {sorted(unexpected)[:3]}")
    if tied:
        net.tie_weights()
    return net.to(device).eval()


def mlx_logprobs(mlx_net, prompt: np.ndarray) -> np.ndarray:
    """MLX's next-token log-probabilities (positions, vocab), float64, at every position of ``prompt``."""
    import mlx.core as mx

    logits = mlx_net(mx.array(prompt[None].astype(np.int32)))[0].astype(mx.float32)
    return _log_softmax(np.array(logits).astype(np.float64))


def torch_logprobs(net, prompt: np.ndarray, device: str) -> np.ndarray:
    import torch

    with torch.inference_mode():
        logits = net(torch.from_numpy(prompt[None]).to(device)).logits[0]
    return _log_softmax(logits.float().cpu().numpy().astype(np.float64))


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def kl_divergence(reference: np.ndarray, measured: np.ndarray) -> tuple[float, float]:
    """Mean KL(reference ‖ measured) in nats and top-1 agreement over positions, from log-probabilities."""
    kl = (np.exp(reference) * (reference - measured)).sum(axis=-1)
    agree = reference.argmax(axis=-1) == measured.argmax(axis=-1)
    return max(float(kl.mean()), 0.0), float(agree.mean())


def torch_generate(net, prompts, generation_tokens: int, prefill_step_size: int) -> dict[str, float]:
    """Greedy generation as ``generate.generate`` times it: ttft_s, prefill_s, decode_s."""
    import inspect

    import torch
    from transformers import DynamicCache

    # transformers 5 renames past_key_values to cache (the old name warns, then goes in 5.40).
    key = "cache" if "cache" in inspect.signature(net.forward).parameters else "past_key_values"
    with torch.inference_mode():
        start = time.perf_counter()
        cache = DynamicCache(config=net.config)
        prefill_start = time.perf_counter()
        rest = prompts[:, :-1]
        while rest.shape[1] > 0:
            net(rest[:, :prefill_step_size], use_cache=True, **{key: cache})
            rest = rest[:, prefill_step_size:]
        y = net(prompts[:, -1:], use_cache=True, **{key: cache}).logits[:, -1].argmax(-1)
        tokens = [y.cpu()]
        first = time.perf_counter()
        for _ in range(generation_tokens - 1):
            y = net(y[:, None], use_cache=True, **{key: cache}).logits[:, -1].argmax(-1)
            tokens.append(y.cpu())
        end = time.perf_counter()
    return {"ttft_s": first - start, "prefill_s": first - prefill_start, "decode_s": end - first}


class TorchMemory(Tracker):
    """PyTorch's own memory counter on ``device``, where it keeps one: its peak over the timed steps,
    as ``torch_peak_memory_bytes`` (None on the CPU, where PyTorch counts nothing)."""

    produces = ("torch_peak_memory_bytes",)

    def __init__(self, device: str):
        import torch

        self.torch, self.device, self.peak = torch, device, None
        self.name = {"cuda": "torch.cuda.max_memory_allocated",
                     "mps": "torch.mps.driver_allocated_memory"}.get(device,
                     "none: PyTorch counts no memory on the CPU (see Peak RSS, the process footprint)")

    def step_started(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.reset_peak_memory_stats()

    def step_ended(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()
            now = self.torch.cuda.max_memory_allocated()
        elif self.device == "mps":
            self.torch.mps.synchronize()
            now = self.torch.mps.driver_allocated_memory()
        else:
            return
        self.peak = now if self.peak is None else max(self.peak, now)

    def figures(self) -> dict[str, Any]:
        return {"torch_peak_memory_bytes": self.peak}


class TorchGenerate(Workload):
    """``generate`` with ``framework: torch`` (``Generate.implementation`` picks it): the timed work is
    PyTorch's, so MLX's counters stay blank and PyTorch's peak is its own figure (``TorchMemory``)."""

    name = "generate"
    timed_phase = "generate"
    framework = "torch"

    def setup(self) -> None:
        # libgomp's threads spin while idle by default: on a busy CPU they starve OpenBLAS's and
        # MLX's (measured here on 2 cores: 875 ms a decode step against 34 ms passive). Read once,
        # when torch loads; a worker imports torch here first. MLX has no such pool.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import mlx.core as mx
        import torch

        p = self.p
        self.device = pick_device(p["device"])
        self.threads = mlx_threads()
        if self.device == "cpu":
            torch.set_num_threads(self.threads)
        mlx_net, config = models.build(p["model"], self.seed, p["dtype"])
        vocab = config.get("vocab_size") or config["text_config"]["vocab_size"]
        prompts = prompt_token_ids(vocab, p["batch_size"], p["prompt_tokens"], self.seed).astype(np.int64)
        self.net = torch_model(p["model"], config, mlx_net, p["dtype"], self.device)
        reference = mlx_logprobs(mlx_net, prompts[0])
        del mlx_net
        mx.clear_cache()
        self.kl, self.top1 = kl_divergence(reference, torch_logprobs(self.net, prompts[0], self.device))
        if self.kl > KL_TOLERANCE:
            raise RuntimeError(f"not the same model: MLX and PyTorch next-token distributions differ by "
                               f"KL {self.kl:.3g} nats (tolerance {KL_TOLERANCE}), top-1 agreement "
                               f"{self.top1:.0%}; their speeds are not comparable")
        self.prompts = torch.from_numpy(prompts).to(self.device)
        self.memory = TorchMemory(self.device)

    def trackers(self) -> list[Tracker]:
        return [self.memory]

    def step(self) -> dict[str, float]:
        p = self.p
        return torch_generate(self.net, self.prompts, p["generation_tokens"], p.get("prefill_step_size", 2048))

    def metrics(self, timed: dict[str, dict]) -> dict[str, Any]:
        import torch

        p = self.p
        batch, generated = p["batch_size"], p["generation_tokens"]
        decode_s = timed["decode_s"]["median"]
        weights = list(self.net.parameters())  # a tied embedding once
        size = sum(t.numel() * t.element_size() for t in weights)
        figures = {
            "prefill_tokens_per_s": batch * p["prompt_tokens"] / timed["ttft_s"]["median"],
            "decode_tokens_per_s": generated / decode_s,
            "decode_tokens_per_s_total": batch * generated / decode_s,
            "model_size_bytes": size,
            "bits_per_weight": 8 * size / sum(t.numel() for t in weights),
            "kl_vs_mlx": self.kl, "top1_vs_mlx": self.top1,
            "torch_threads": torch.get_num_threads(), "torch_blas": torch_blas(),
            "torch_device": self.device, "torch_memory_counter": self.memory.name,
            "torch_omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        }
        return figures
