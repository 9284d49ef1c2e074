"""The generation kernel: prefill a prompt, then decode greedily with mlx-lm's KV cache.

One ``step()`` is one whole generation for ``batch_size`` prompts of ``prompt_tokens``
tokens: the prompt in chunks of ``prefill_step_size``, then ``generation_tokens`` decode
steps, end-of-sequence ignored so every case decodes the same number of tokens. The model
code and the cache are mlx-lm's; the loop is ``mlx_lm.generate.generate_step``'s (the same
chunking, the same one-step-ahead ``async_eval`` pipelining, the same stream), batched.

Speeds follow ``mlx_lm benchmark`` (``stream_generate``) to the letter, so the two agree:

- prefill: the time from the start of the generation to the first generated token on the
  host (``prompt_tps = prompt tokens / that time``);
- decode: the time from the first token to the last, and, as mlx-lm counts, all
  ``generation_tokens`` over it (the first token's own step is in the prefill time, so this
  reads ``generation_tokens / (generation_tokens - 1)`` higher than tokens per decode step).

A quantized case also says what the saving costs: KL divergence and top-1 agreement of its
next-token distributions against the unquantized model's (same seed, same dtype), both
teacher-forced over the same tokens, the prompt plus the unquantized model's own greedy
continuation, so position *i* of one is position *i* of the other.

What a ``test`` (pp, tg, pg) at a ``depth``, with or without a prompt-cache hit, times and
counts is defined once, for every implementation, in ``_generation_plan``; what each
phase costs in FLOPs and bytes in ``_generation_costs``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from mlxbench.workloads import _data_parallel as dp
from mlxbench.workloads import _generation_runtime as runtime
from mlxbench.workloads import models
from mlxbench.workloads.distributed import DISTRIBUTED_PARAM, RANK_METRICS, sharding_errors
from mlxbench.workloads import memory_settings
from mlxbench.results.metrics import PEAK_MEMORY, Metric, memory, rate, timing
from mlxbench.workloads.base import Param, Workload, register
from mlxbench.workloads._model_params import MODEL_PARAM, QUANTIZATION_PARAMS, quantization_errors
from mlxbench.workloads._generation_costs import model_costs
from mlxbench.workloads._generation_plan import PROMPT_CACHE, TESTS, Plan, prompt_token_ids
from mlxbench.workloads import _generate_memory
from mlxbench.workloads._generate_torch import FRAMEWORK_PARAMS, TORCH_METRICS, TorchGenerate, torch_errors

KV_BITS = (4, 8)
# The report sections a generate run gets (rendered by report/ from this data, in the run's suite.yaml).
FRAMEWORKS_SECTION = {
    "kind": "paired", "title": "MLX against PyTorch", "param": "framework", "subject": "mlx", "reference": "torch",
    "subject_label": "MLX", "reference_label": "PyTorch", "ignored": ["device"], "claim": [5.0, 10.0],
    "claim_text": "a guide's claim: MLX generates 5–10× faster than PyTorch on Apple silicon "
                  "(1–2 tok/s against 0.2 tok/s on PyTorch MPS, 7B model)",
    "caption": "Each MLX case against the PyTorch case of the same model, weights, prompts and sweep point, each run "
               "in its own process through the same measurement loop (PyTorch unquantized: an MLX quantized case is "
               "set against PyTorch's model of the same dtype). Above 1×, MLX is faster. “Same model?” is the "
               "PyTorch case's KL divergence from MLX's next-token distributions on the same weights; a case beyond "
               "the tolerance fails instead."}
# llama-bench's fields that come from a case's parameters: which parameter each is.
LLAMA_BENCH_SECTION = {"kind": "llama_bench", "model_file": "model", "weight_bits": "quantization",
                       "weight_dtype": "dtype", "cache_bits": "kv_bits", "n_batch": "prefill_step_size",
                       "columns": ["prompt_cache"]}


@dataclass
class Generation:
    """The tokens one generation produced and how long its phases took."""

    tokens: mx.array  # (batch, generation_tokens)
    ttft_s: float  # start of the generation → first token on the host
    prefill_s: float  # first model call → first token on the host
    decode_s: float  # first token → last token on the host
    total_s: float  # start of the generation → last token on the host


def make_prompts(vocab_size: int, batch_size: int, prompt_tokens: int, seed: int) -> mx.array:
    """``prompt_token_ids`` as MLX int32."""
    return mx.array(prompt_token_ids(vocab_size, batch_size, prompt_tokens, seed).astype(np.int32))


def _prefill(model: nn.Module, cache: list, tokens: mx.array, step_size: int, quantize_kv) -> None:
    """Run ``tokens`` through the model into ``cache``, ``step_size`` at a time (as generate_step)."""
    while tokens.shape[1] > 0:
        n = min(step_size, tokens.shape[1])
        model(tokens[:, :n], cache=cache)
        quantize_kv(cache)
        mx.eval([c.state for c in cache])
        tokens = tokens[:, n:]
        mx.clear_cache()


def _kv_quantizer(kv_bits: int | None, kv_group_size: int):
    """mlx-lm's own cache quantization, from the first token on (its quantized_kv_start=0)."""
    def quantize_kv(cache: list) -> None:
        runtime.maybe_quantize_kv_cache(cache, quantized_kv_start=0, kv_group_size=kv_group_size, kv_bits=kv_bits)

    return quantize_kv


def generate(model: nn.Module, prompts: mx.array, generation_tokens: int, prefill_step_size: int = 2048,
             kv_bits: int | None = None, kv_group_size: int = 64, cache: list | None = None) -> Generation:
    """Greedy generation of ``generation_tokens`` tokens for every row of ``prompts`` (batch, length).

    ``cache``: a prompt cache that already holds context (a depth, a shared prefix) which the
    prompts continue; None: a fresh one, made inside the timed span as mlx-lm does.
    """
    from mlx_lm.models.cache import make_prompt_cache

    quantize_kv = _kv_quantizer(kv_bits, kv_group_size)

    def next_token(inputs: mx.array, cache: list) -> mx.array:
        logits = model(inputs, cache=cache)[:, -1, :]
        quantize_kv(cache)
        # Greedy: the argmax of the logits is the argmax of the log-probabilities.
        return mx.argmax(logits, axis=-1)

    stream = runtime.generation_stream()
    with runtime.wired_limit([stream]), mx.stream(stream):
        start = time.perf_counter()
        cache = make_prompt_cache(model) if cache is None else cache
        prefill_start = time.perf_counter()
        _prefill(model, cache, prompts[:, :-1], prefill_step_size, quantize_kv)
        y = next_token(prompts[:, -1:], cache)
        mx.async_eval(y)
        tokens = [y]
        # Like generate_step: the next step is queued before waiting for this one's token.
        for n in range(generation_tokens):
            if n + 1 < generation_tokens:
                following = next_token(y[:, None], cache)
                mx.async_eval(following)
            mx.eval(y)
            if n == 0:
                first = time.perf_counter()
            if n % 256 == 0:
                mx.clear_cache()
            if n + 1 < generation_tokens:
                y = following
                tokens.append(y)
        end = time.perf_counter()
    return Generation(tokens=mx.stack(tokens, axis=1), ttft_s=first - start,
                      prefill_s=first - prefill_start, decode_s=end - first, total_s=end - start)


def continuation_logprobs(model: nn.Module, sequence: mx.array, prompt_tokens: int,
                          prefill_step_size: int = 2048, kv_bits: int | None = None,
                          kv_group_size: int = 64) -> mx.array:
    """Log-probabilities (generated, vocab), float32, the model gives each token after the prompt.

    ``sequence`` is (1, prompt + generated): the prompt goes through the cache as in
    ``generate``, then all generated positions at once (teacher forcing).
    """
    from mlx_lm.models.cache import make_prompt_cache

    quantize_kv = _kv_quantizer(kv_bits, kv_group_size)
    cache = make_prompt_cache(model)
    _prefill(model, cache, sequence[:, : prompt_tokens - 1], prefill_step_size, quantize_kv)
    logits = model(sequence[:, prompt_tokens - 1 : -1], cache=cache)[0].astype(mx.float32)
    logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    mx.eval(logprobs)
    return logprobs


def logit_error(reference: mx.array, measured: mx.array) -> dict[str, float]:
    """Mean KL(reference ‖ measured) in nats and top-1 agreement over positions, from log-probabilities."""
    kl = mx.sum(mx.exp(reference) * (reference - measured), axis=-1)
    agree = mx.argmax(reference, axis=-1) == mx.argmax(measured, axis=-1)
    return {"kl_divergence": max(mx.mean(kl).item(), 0.0), "top1_agreement": mx.mean(agree).item()}


def model_size_bytes(net: nn.Module) -> int:
    """Bytes of all parameters, packed weights, scales and biases included."""
    return sum(v.nbytes for _, v in tree_flatten(net.parameters()))


def bits_per_weight(net: nn.Module) -> float:
    """Bits stored per parameter, as mlx_lm.utils.compute_bits_per_weight counts them (whose module
    imports the tokenizer stack: 1.8 s of every generation case here)."""
    return model_size_bytes(net) * 8 / models.logical_parameter_count(net)


def _vocab_size(config: dict) -> int:
    return config.get("vocab_size") or config["text_config"]["vocab_size"]


def _head_dim(config: dict) -> int:
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def check_kv_quantization(model: str, kv_bits: int, kv_group_size: int) -> str | None:
    """None if mlx-lm can quantize the KV cache of ``model`` with ``kv_group_size``, else why not."""
    from mlx_lm.models.cache import make_prompt_cache
    from mlx_lm.utils import _get_classes

    config = models.config_of(model)
    model_class, args_class = _get_classes(config)
    # Building the module only records lazy initializers; no weight is computed.
    caches = make_prompt_cache(model_class(args_class.from_dict(config)))
    for cache in caches:
        if not hasattr(cache, "to_quantized"):
            return (f"expected null: mlx-lm cannot quantize the {type(cache).__name__} of "
                    f"{config['model_type']} models, got {kv_bits}")
    if _head_dim(config) % kv_group_size:
        return (f"expected null: the KV cache is quantized along the head dimension, "
                f"{_head_dim(config)} in {model}, which kv_group_size {kv_group_size} does not divide, "
                f"got {kv_bits}")
    return None


@register
class Generate(Workload):
    name = "generate"
    description = "Prefill + greedy decode with mlx-lm's KV cache: speed, memory, and quantization's cost"
    params = (
        MODEL_PARAM,
        Param("prompt_tokens", int, 512, minimum=1, help="tokens in each prompt"),
        Param("generation_tokens", int, 128, minimum=2,
              help="tokens decoded per sequence, end-of-sequence ignored (at least 2: one after the first)"),
        Param("batch_size", int, 1, minimum=1, help="sequences generated together"),
        Param("test", str, "pg", choices=TESTS,
              help="llama-bench's test: pp prefill only, tg decode only, pg both"),
        Param("depth", int, 0, minimum=0, help="tokens already in the KV cache before the test, filled untimed"),
        Param("prompt_cache", str, None, nullable=True, choices=PROMPT_CACHE,
              help="hit: the depth is a shared prefix in a reused prompt cache; miss: it is prefilled, timed"),
        *QUANTIZATION_PARAMS,
        Param("kv_bits", int, None, nullable=True, choices=KV_BITS,
              help="null: full-precision KV cache; bits: mlx-lm's quantized KV cache from the first token"),
        Param("kv_group_size", int, 64, choices=models.QUANT_GROUP_SIZES,
              help="group size of the quantized KV cache (must divide the head dimension)"),
        Param("dtype", str, "float32", choices=tuple(models.DTYPES), help="dtype of the model's weights"),
        Param("prefill_step_size", int, 2048, minimum=1, help="prompt tokens per forward pass in prefill"),
        DISTRIBUTED_PARAM,  # tensor parallel: each rank holds its part of every layer (mlx-lm's Model.shard)
        *memory_settings.PARAMS,
        *FRAMEWORK_PARAMS,
    )
    declares = (
        PEAK_MEMORY,
        rate("decode_tokens_per_s", "Decode tok/s (per sequence)", of="decode_s", unit="tok/s",
             savings="Decode Speed"),
        rate("prefill_tokens_per_s", "Prefill tok/s (all sequences)", of="ttft_s", unit="tok/s"),
        timing("ttft_s", "TTFT (s)"),
        memory("model_size_bytes", "Model Size (MB)", True, kind="size", note="exact"),
        Metric("bits_per_weight", "Bits/Weight", better="lower"),
        Metric("kl_divergence", "KL vs Unquantized", better="lower", kind="quality"),
        Metric("top1_agreement", "Top-1 Agreement", better="higher", kind="quality", column=False),
        Metric("compression_ratio", "Compression (×)", better="higher", column=False),
        rate("decode_tokens_per_s_total", "Decode tok/s (all sequences)", of="decode_s", unit="tok/s",
             column=False),
        timing("decode_s", "Decode (s)", column=False),
        timing("prefill_s", "Prefill (s)", column=False, judged=False, note="judged through TTFT"),
        timing("test_s", "Test Time (s)", column=False, judged=False,
               note="llama-bench's test span: judged through TTFT and decode"),
        rate("prefill_flop_per_s", "Prefill GFLOP/s (all sequences)", of="ttft_s", unit="GFLOP/s",
             scale=1e9, column=False),
        rate("prefill_bytes_per_s", "Prefill GB/s (all sequences)", of="ttft_s", unit="GB/s",
             scale=1e9, column=False),
        rate("decode_flop_per_s", "Decode GFLOP/s (all sequences)", of="decode_s", unit="GFLOP/s",
             scale=1e9, column=False),
        rate("decode_bytes_per_s", "Decode GB/s read (all sequences)", of="decode_s", unit="GB/s",
             scale=1e9, column=False),
        Metric("n_prompt", "Prompt Tokens (timed)", column=False),
        Metric("n_gen", "Generated Tokens", column=False),
        Metric("n_depth", "Context Depth (tokens)", column=False),
        Metric("n_seq", "Sequences", column=False),
        Metric("model_n_params", "Parameters", column=False),
        timing("step_time_s", "End to End (s)", column=False),
        *RANK_METRICS,
        *TORCH_METRICS,
    )
    headline = ("decode_tokens_per_s", "prefill_tokens_per_s", "peak_memory_bytes")
    timed_phase = "generate"
    memory_model = _generate_memory.MEMORY
    search_space = _generate_memory.SPACE
    report_sections = (FRAMEWORKS_SECTION, LLAMA_BENCH_SECTION)

    @classmethod
    def implementation(cls, params: dict) -> type[Workload]:
        """framework: torch runs the same case in PyTorch (_generate_torch.TorchGenerate)."""
        return TorchGenerate if params.get("framework") == "torch" else cls

    @classmethod
    def check(cls, params: dict) -> list[tuple[str, str]]:
        errors = quantization_errors(params["model"], params.get("quantization"), params["group_size"])
        errors += torch_errors(params)
        if params.get("kv_bits") is not None:
            if (problem := check_kv_quantization(params["model"], params["kv_bits"], params["kv_group_size"])) is not None:
                errors.append(("kv_bits", problem))
        # At depth 0 nothing is shared: a hit and a miss are the same test, kept so a depth sweep can start at 0.
        if params.get("prompt_cache") is not None and params["test"] == "tg":
            errors.append(("prompt_cache", "expected test pp or pg with a prompt cache (it saves prefill), got tg"))
        return errors + sharding_errors(params)

    def setup(self) -> None:
        p = self.p
        self.plan = Plan.of(p)
        memory_settings.apply(self)
        self.net, self.config = models.build(p["model"], self.seed, p["dtype"])
        dp.shard_model(self.net, dp.group(p))
        # Row i's tokens depend only on (seed, i): the context first, then the timed prompt.
        tokens = make_prompts(_vocab_size(self.config), p["batch_size"], self.plan.depth + self.plan.fed, self.seed)
        self.context, self.prompts = tokens[:, : self.plan.depth], tokens[:, self.plan.depth:]
        self.quality: dict[str, float] = {}
        self.unquantized_size_bytes = model_size_bytes(self.net)
        self.n_params = models.logical_parameter_count(self.net)
        if p["quantization"] is not None or p["kv_bits"] is not None:
            self._measure_quality()
        self.shared = self._filled_cache() if p["prompt_cache"] == "hit" else None

    def _measure_quality(self) -> None:
        """The price of the saving, untimed: the unquantized model's logits first, then the quantized
        model's on the same tokens. Measured on the first sequence's prompt, the same for every batch size."""
        p = self.p
        prompt = make_prompts(_vocab_size(self.config), 1, p["prompt_tokens"], self.seed)
        continuation = generate(self.net, prompt, p["generation_tokens"], p["prefill_step_size"]).tokens
        sequence = mx.concatenate([prompt, continuation.astype(prompt.dtype)], axis=1)
        reference = continuation_logprobs(self.net, sequence, p["prompt_tokens"], p["prefill_step_size"])
        if p["quantization"] is not None:
            models.quantize(self.net, p["quantization"], p["group_size"])
        measured = continuation_logprobs(self.net, sequence, p["prompt_tokens"], p["prefill_step_size"],
                                         p["kv_bits"], p["kv_group_size"])
        self.quality = logit_error(reference, measured)
        del reference, measured
        mx.clear_cache()

    def _filled_cache(self) -> list | None:
        """A cache holding the context (the depth), filled untimed; None at depth 0."""
        from mlx_lm.models.cache import make_prompt_cache

        if not self.plan.depth:
            return None
        p = self.p
        cache = make_prompt_cache(self.net)
        _prefill(self.net, cache, self.context, p["prefill_step_size"], _kv_quantizer(p["kv_bits"], p["kv_group_size"]))
        return cache

    def _context_cache(self) -> list | None:
        """The cache the timed test starts from: the shared prefix trimmed back to itself, or a fresh fill."""
        from mlx_lm.models.cache import trim_prompt_cache

        if self.shared is None:
            return self._filled_cache()
        first = self.shared[0]
        trim_prompt_cache(self.shared, getattr(first, "offset", 0) - self.plan.depth)
        if getattr(first, "offset", None) != self.plan.depth:
            raise ValueError(f"prompt_cache hit: mlx-lm cannot trim a {type(first).__name__} back to the "
                             f"shared prefix of {self.plan.depth} tokens, so it cannot be reused")
        return self.shared

    def step(self) -> dict[str, float]:
        p = self.p
        cache = self._context_cache()
        g = generate(self.net, self.prompts, self.plan.steps_generated, p["prefill_step_size"],
                     p["kv_bits"], p["kv_group_size"], cache=cache)
        memory_settings.clear_cache(p)
        return self.plan.phases(g.ttft_s, g.prefill_s, g.decode_s, g.total_s)

    def teardown(self) -> None:
        memory_settings.restore(self)

    def metrics(self, timed: dict[str, dict]) -> dict[str, Any]:
        p = self.p
        costs = model_costs(self.net, self.config, p["dtype"], p["kv_bits"], p["kv_group_size"])
        size = model_size_bytes(self.net)
        return {
            **self.plan.figures(timed, costs),
            **self.plan.counts(),
            "model_n_params": self.n_params,
            "model_size_bytes": size,
            "bits_per_weight": bits_per_weight(self.net),
            "compression_ratio": self.unquantized_size_bytes / size,
            **self.quality,
        }
