"""What the ``train`` workload knows of its memory: the estimate's terms, and what ``fit`` searches.

The terms are exact sizes from the model's shapes (``_shapes``); the constants, how many of each
buffer are alive at the peak, were fitted to measured peaks of MLX on the CPU
(``tests/test_estimate.py`` measures them).
"""

from __future__ import annotations

from mlxbench.workloads._shapes import shapes
from mlxbench.workloads.base import MemoryModel, SearchSpace

OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 1}  # MLX's SGD keeps a velocity even at momentum 0
UPDATE = "optimizer_update"  # a phase of its own (see MemoryModel)
CONSTANTS = {"block_activations": 0.98, "attention_scores": 0.31, "logits": 4.4, "checkpoint_inputs": 2.6,
             "half_precision_embedding": 0.7, "gradients": 0.25, "accumulated_gradients": 1.3,
             "checkpointed_gradients": 0.67, UPDATE: 1.0}


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


def guide_batch_size(weights_gb: float, ram_gb: float) -> int:
    """The memory guide's rule of thumb (mlx-knowledge-base, guides/memory-optimization.md,
    ``get_optimal_batch_size``): keep 8 GB for the system and count activations as 1.5× the
    weights; 4 if what is left holds twice that, 2 if 1.5 times, else 1."""
    free, activations = ram_gb - 8, 1.5 * weights_gb
    return 4 if free > 2 * activations else 2 if free > 1.5 * activations else 1


PLAIN = {"gradient_checkpointing": False, "micro_batch_size": None}


def rules_of_thumb(best: dict | None, weights_bytes: int, budget_bytes: float, fixed: dict) -> dict[str, dict]:
    """What the training rules of thumb would have picked, by name."""
    plain = {k: v for k, v in PLAIN.items() if k not in fixed}
    picks = {"memory guide's get_optimal_batch_size":
             {**plain, "batch_size": guide_batch_size(weights_bytes / 1e9, budget_bytes / 1e9)}}
    if "micro_batch_size" not in fixed:
        batch = (best or {}).get("batch_size", 8)
        batch = batch if batch > 4 and batch % 4 == 0 else 8
        picks["\"start with micro_batch_size=4\""] = {**plain, "micro_batch_size": 4, "batch_size": batch}
    return picks


MEMORY = MemoryModel(train_terms, CONSTANTS)
SPACE = SearchSpace("tokens_per_s", "tokens/s", tuple(
    {"gradient_checkpointing": gc, "micro_batch_size": micro} for gc in (False, True) for micro in (None, 8, 4, 2, 1)),
    PLAIN, split="micro_batch_size", recompute="gradient_checkpointing", rules_of_thumb=rules_of_thumb)
