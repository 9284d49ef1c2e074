"""What the ``generate`` workload knows of its memory: the estimate's terms, and what ``fit`` searches.

The KV cache holds the depth, the prompt and the generated tokens of every sequence; mlx-lm's
``KVCache`` grows it in steps of 256 tokens, copying it when it grows. Prefill goes in chunks of
``prefill_step_size`` (the depth first, untimed, then the prompt): the largest chunk's
activations and its attention scores over everything cached before it are alive at once.
"""

from __future__ import annotations

import math

from mlxbench.workloads._generation_plan import Plan
from mlxbench.workloads._shapes import shapes
from mlxbench.workloads.base import MemoryModel, SearchSpace

KV_STEP = 256  # mlx-lm's KVCache grows in steps of 256 tokens
CONSTANTS = {"kv_cache": 1.0, "kv_cache_before_quantization": 1.0, "kv_cache_growth": 1.0,
             "prefill_activations": 1.0, "prefill_scores": 1.2}


def cache_updates(plan: Plan) -> list[int]:
    """Tokens each model call adds to one layer's cache: the depth's chunks, the prompt's but its last
    token, then one token per call (the prompt's last, then each generated one but the last)."""
    chunk = plan.prefill_step_size
    depth = [min(chunk, plan.depth - i) for i in range(0, plan.depth, chunk)]
    prompt = max(plan.fed - 1, 0)
    return depth + [min(chunk, prompt - i) for i in range(0, prompt, chunk)] + [1] * plan.steps_generated


def kv_capacity(updates: list[int]) -> tuple[int, int, int]:
    """(tokens the cache holds at the end, the capacity it had before its last growth, the largest
    chunk's n × the tokens it attends over): mlx-lm grows the cache in steps of 256 (KVCache)."""
    capacity = offset = before = scores = 0
    for n in updates:
        if offset + n > capacity:
            before, capacity = offset, offset + math.ceil(n / KV_STEP) * KV_STEP
        offset += n
        if n > 1:
            scores = max(scores, n * offset)
    return capacity, before, scores


def generate_terms(p: dict) -> tuple[dict[str, int], dict[str, int]]:
    """(resident, terms) of a generate case."""
    dtype = p.get("dtype") or "float32"
    s = shapes(p.get("model", "small"), dtype, p.get("quantization"), p.get("group_size") or 64)
    plan = Plan.of({"test": "pg", "depth": 0, "prompt_cache": None, "batch_size": 1, "prompt_tokens": 512,
                    "generation_tokens": 128, "prefill_step_size": 2048, **p})
    updates = cache_updates(plan)
    tokens, before_growth, scores = kv_capacity(updates)
    b, kv_bits = s.dtype_bytes, p.get("kv_bits")
    per_value = b if kv_bits is None else kv_bits / 8 + 2 * b / (p.get("kv_group_size") or 64)
    per_token = 2 * plan.batch * s.layers * s.kv_width  # keys and values of every layer
    chunk = max((n for n in updates if n > 1), default=1)
    # mlx-lm quantizes the cache after the first model call: the first chunk is cached at dtype first.
    first = math.ceil(updates[0] / KV_STEP) * KV_STEP if updates else 0
    block = 2 * s.hidden + s.q_width + 2 * s.kv_width + 3 * s.intermediate  # a block's activations per token
    terms = {
        "kv_cache": round(per_token * tokens * per_value),
        "kv_cache_before_quantization": per_token * first * b if kv_bits else 0,
        # growing copies one layer's cache: the old and the grown one are alive together
        "kv_cache_growth": round(per_token / s.layers * before_growth * per_value),
        "prefill_activations": plan.batch * chunk * block * b,
        "prefill_scores": plan.batch * s.heads * scores * 4,
    }
    return {"weights": s.weight_bytes}, terms


MEMORY = MemoryModel(generate_terms, CONSTANTS)
SPACE = SearchSpace("decode_tokens_per_s_total", "decode tokens/s (all sequences)", tuple(
    {"quantization": q, "kv_bits": kv} for q in (None, 8, 4) for kv in (None, 8, 4)),
    {"quantization": None, "kv_bits": None}, bounded=False)
