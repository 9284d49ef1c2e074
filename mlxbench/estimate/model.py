"""The analytic memory model: a case's peak MLX memory from its parameters and its model's shapes.

A peak is what is resident (weights, optimizer state: exact, from the shapes) plus what a
step adds. What a step adds is a sum of terms, each an exact size computed from the shapes
and the case (the tensors a block keeps for its backward pass, the attention scores, the
logits, the gradients, the KV cache, …) times a constant: how many such buffers the backend
keeps alive at the peak. The constants cannot be derived (kernel buffers, what the compiled
graph fuses, allocator rounding); ``DEFAULT_CONSTANTS`` were fitted to measured peaks of MLX on
the CPU (``tests/test_estimate.py`` measures them), and ``mlxbench estimate --calibrate`` refits
them from a run's records for one environment. Every estimate says which constants it used.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from mlxbench.estimate.shapes import Shapes, shapes

OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 1}  # MLX's SGD keeps a velocity even at momentum 0
KV_STEP = 256  # mlx-lm's KVCache grows in steps of 256 tokens

# Buffers alive at the peak, per term; fitted to measured peaks (estimate/calibrate.py).
DEFAULT_CONSTANTS = {
    "train": {"block_activations": 0.98, "attention_scores": 0.31, "logits": 4.4, "checkpoint_inputs": 2.6, "half_precision_embedding": 0.7,
              "gradients": 0.25, "accumulated_gradients": 1.3, "checkpointed_gradients": 0.67,
              "optimizer_update": 1.0},
    "generate": {"kv_cache": 1.0, "kv_cache_before_quantization": 1.0, "prefill_activations": 1.0,
                 "prefill_scores": 1.2},
    "load": {"quantized_copy": 1.0},
}
DEFAULT_BASIS = "default constants (fitted to MLX on the CPU; not calibrated for this environment)"


@dataclass
class Estimate:
    """A case's estimated peak MLX memory, in parts, and the constants it rests on."""

    peak_bytes: int
    resident: dict[str, int]  # exact: weights, optimizer state
    terms: dict[str, int]  # exact sizes of what a step adds, before the constants
    constants: dict[str, float]
    calibrated: bool = False
    basis: str = DEFAULT_BASIS
    notes: list[str] = field(default_factory=list)

    @property
    def parts(self) -> dict[str, int]:
        """Bytes of each part at the peak: the resident ones and each term of the peak's phase times its constant."""
        scaled = {k: round(v * self.constants.get(k, 0.0)) for k, v in self.terms.items()}
        update = scaled.pop(UPDATE, 0)
        if update > sum(scaled.values()):  # the peak is in the update, not in forward/backward
            scaled = {UPDATE: update}
        return {**self.resident, **{k: v for k, v in scaled.items() if v}}

    def to_dict(self) -> dict:
        return {**asdict(self), "parts": self.parts}

    def summary(self) -> str:
        """'~1.23 GB (weights 0.12 GB, activations …) · calibrated' in one line."""
        parts = sorted(self.parts.items(), key=lambda kv: -kv[1])[:4]
        listed = ", ".join(f"{k.replace('_', ' ')} {gb(v)}" for k, v in parts)
        return f"~{gb(self.peak_bytes)} ({listed}) · {'calibrated' if self.calibrated else 'not calibrated'}"


def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


# A phase of its own: the optimizer update, once the activations are gone, holds the gradients and
# the update's temporaries. The peak is the larger of it and the forward/backward's terms.
UPDATE = "optimizer_update"


def combine(resident: dict[str, int], terms: dict[str, int], constants: dict[str, float]) -> int:
    step = sum(v * constants.get(k, 0.0) for k, v in terms.items() if k != UPDATE)
    return round(sum(resident.values()) + max(step, terms.get(UPDATE, 0) * constants.get(UPDATE, 0.0)))


def train_terms(p: dict) -> tuple[dict[str, int], dict[str, int]]:
    """(resident, terms) of a train case."""
    lora = p.get("lora")
    bits = p.get("quantization") if lora is not None else None  # only a frozen base is quantized
    s = shapes(p.get("model", "small"), p.get("dtype") or "float32", bits, p.get("group_size") or 64, lora)
    batch, seq = p.get("batch_size", 8), p.get("seq_length", 512)
    micro = p.get("micro_batch_size") or batch
    tokens = micro * seq
    gc = bool(p.get("gradient_checkpointing"))
    kept = 1 if gc else s.trained_layers  # blocks whose activations are alive at once
    b = s.dtype_bytes
    block = 6 * s.hidden + 4 * s.q_width + 3 * s.kv_width + 5 * s.intermediate
    optimizer = OPTIMIZER_STATES.get(p.get("optimizer", "adam"), 2)
    resident = {"weights": s.weight_bytes, "optimizer_state": optimizer * s.trainable_bytes}
    terms = {
        "block_activations": tokens * kept * block * b,
        "attention_scores": tokens * kept * 2 * s.heads * seq * b,
        "logits": tokens * s.vocab * b,
        "checkpoint_inputs": tokens * s.trained_layers * s.hidden * b if gc else 0,
        # bfloat16/float16: a float32 buffer the size of the embedding (measured: ~12 MB on two models
        # whose embeddings are both 16.8 MB in float32; which buffer it is was not pinned down)
        "half_precision_embedding": s.vocab * s.hidden * 4 if b < 4 else 0,
        "gradients": s.trainable_bytes,
        "accumulated_gradients": s.trainable_bytes if micro < batch else 0,
        "checkpointed_gradients": s.trainable_bytes if gc else 0,
        # the gradients plus about half a temporary per optimizer state (measured: Adam ≈ 1.9×, SGD ≈ 1.6×)
        UPDATE: round(s.trainable_bytes * (1 + optimizer / 2)),
    }
    return resident, terms


def kv_capacity(prompt: int, generated: int, chunk: int) -> int:
    """Tokens one layer's KV cache holds at the end: mlx-lm grows it in steps of 256 (KVCache)."""
    capacity = offset = 0
    updates = [min(chunk, prompt - 1 - i) for i in range(0, max(prompt - 1, 0), chunk)] + [1] * generated
    for n in updates:
        if offset + n > capacity:
            capacity = offset + math.ceil(n / KV_STEP) * KV_STEP
        offset += n
    return capacity


def generate_terms(p: dict) -> tuple[dict[str, int], dict[str, int]]:
    """(resident, terms) of a generate case."""
    dtype = p.get("dtype") or "float32"
    s = shapes(p.get("model", "small"), dtype, p.get("quantization"), p.get("group_size") or 64)
    batch, prompt = p.get("batch_size", 1), p.get("prompt_tokens", 512)
    generated, chunk = p.get("generation_tokens", 128), min(p.get("prefill_step_size") or 2048, prompt)
    b = s.dtype_bytes
    tokens = kv_capacity(prompt, generated, chunk)
    per_value = b
    kv_bits = p.get("kv_bits")
    if kv_bits is not None:  # packed values plus a scale and a bias per group
        per_value = kv_bits / 8 + 2 * b / (p.get("kv_group_size") or 64)
    kv = 2 * batch * s.layers * s.kv_width * tokens * per_value
    cached = min(prompt - 1, chunk * math.ceil(max(prompt - 1, 1) / chunk))
    # mlx-lm quantizes the cache after the first model call: the first chunk is cached at dtype first.
    first = math.ceil(min(chunk, max(prompt - 1, 1)) / KV_STEP) * KV_STEP
    terms = {
        "kv_cache": round(kv),
        "kv_cache_before_quantization": 2 * batch * s.layers * s.kv_width * first * b if kv_bits else 0,
        "prefill_activations": batch * chunk * (2 * s.hidden + s.q_width + 2 * s.kv_width + 3 * s.intermediate) * b,
        "prefill_scores": batch * chunk * s.heads * cached * 4,
    }
    return {"weights": s.weight_bytes}, terms


def load_terms(p: dict) -> tuple[dict[str, int], dict[str, int]]:
    """(resident, terms) of a load case: the weights as loaded, and the quantized copy made from them."""
    model = p.get("model", "small")
    dtype = p.get("dtype") or "float32"
    s = shapes(model, dtype)
    terms = {"quantized_copy": 0}
    if p.get("quantization") is not None:
        terms["quantized_copy"] = shapes(model, dtype, p["quantization"], p.get("group_size") or 64).weight_bytes
    return {"weights": s.weight_bytes}, terms


TERMS = {"train": train_terms, "generate": generate_terms, "load": load_terms}


def supports(workload: str) -> bool:
    return workload in TERMS


def estimate(workload: str, params: dict, constants: dict | None = None, basis: str | None = None) -> Estimate:
    """The estimated peak of a ``workload`` case with ``params``; ``constants`` from a calibration, if any."""
    resident, terms = TERMS[workload](params)
    used = {**DEFAULT_CONSTANTS[workload], **(constants or {})}
    return Estimate(peak_bytes=combine(resident, terms, used), resident=resident, terms=terms,
                    constants=used, calibrated=constants is not None, basis=basis or DEFAULT_BASIS)


def weights_bytes(workload: str, params: dict) -> int:
    """The weights alone, as the case holds them."""
    return TERMS[workload](params)[0]["weights"]


__all__ = ["Estimate", "Shapes", "estimate", "supports", "weights_bytes", "DEFAULT_CONSTANTS"]
