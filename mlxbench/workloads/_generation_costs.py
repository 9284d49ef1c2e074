"""What a generation's phases cost the machine: FLOPs done and bytes read, counted from the model.

A roofline sets a measured rate against two ceilings: compute (FLOP/s) and memory
bandwidth (bytes/s). These are the amounts the rates divide, from the model's shapes:

- FLOPs: 2 per weight value per token in each matmul (quantized weights count the values
  they hold), plus attention's 4·(heads × head_dim) per layer per token it attends to (QKᵀ
  and AV). Prefill computes the output projection for its last token only (MLX is lazy:
  the logits of the other prompt tokens are never evaluated).
- Bytes: one decode step reads every weight once, packed sizes, scales and biases included
  (an untied embedding table only reads the rows it looks up, so it is left out), and the
  KV cache of every sequence up to its current length, at the cache's own precision
  (mlx-lm's quantized cache: packed values plus a scale and a bias per group). Prefill reads
  the weights once per forward pass and writes the cache once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mlx.nn as nn
from mlx.utils import tree_flatten

from mlxbench.workloads import models

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class ModelCosts:
    body_weights: int  # weight values the transformer blocks multiply per token
    head_weights: int  # weight values of the output projection
    attention_width: int  # layers × heads × head_dim
    weight_bytes: int  # bytes one decode step reads of the weights
    kv_bytes_per_token: float  # one sequence's K and V for one token, every layer

    def forward_flops(self, tokens: int, cached: int, head_tokens: int) -> float:
        """FLOPs of ``tokens`` tokens after ``cached`` already in the cache, one sequence."""
        attended = tokens * cached + tokens * (tokens + 1) / 2  # each token attends to all before it and itself
        return 2 * self.body_weights * tokens + 2 * self.head_weights * head_tokens + 4 * self.attention_width * attended

    def prefill_flops(self, tokens: int, cached: int) -> float:
        return self.forward_flops(tokens, cached, head_tokens=1)

    def prefill_bytes(self, tokens: int, cached: int, passes: int, batch: int) -> float:
        return self.weight_bytes * passes + batch * self.kv_bytes_per_token * (cached + tokens)

    def decode_step_flops(self, cached: float) -> float:
        """FLOPs of one decode step of one sequence with ``cached`` tokens before it."""
        return 2 * (self.body_weights + self.head_weights) + 4 * self.attention_width * (cached + 1)

    def decode_step_bytes(self, cached: float, batch: int) -> float:
        """Bytes one decode step of ``batch`` sequences reads, ``cached`` tokens in each cache."""
        return self.weight_bytes + batch * self.kv_bytes_per_token * (cached + 1)


def model_costs(net: nn.Module, config: dict, dtype: str, kv_bits: int | None, kv_group_size: int) -> ModelCosts:
    """The per-token amounts of ``net`` (as built, quantized or not) and its KV cache."""
    weights = models._matmul_weights(net)
    tied = config.get("tie_word_embeddings", False)
    embedding = models._find_embedding(net) if any(
        isinstance(m, (nn.Embedding, nn.QuantizedEmbedding)) for _, m in net.named_modules()) else None
    embedding_values = 0
    embedding_bytes = 0
    if embedding is not None:
        bits = embedding.bits if isinstance(embedding, nn.QuantizedEmbedding) else 32
        embedding_values = embedding.weight.size * 32 // bits
        embedding_bytes = sum(v.nbytes for _, v in tree_flatten(embedding.parameters()))
    all_bytes = sum(v.nbytes for _, v in tree_flatten(net.parameters()))
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    layers = config["num_hidden_layers"]
    kv_values = 2 * layers * config.get("num_key_value_heads", heads) * head_dim
    element = DTYPE_BYTES[dtype]
    kv_bytes = (kv_values * element if kv_bits is None
                else kv_values * kv_bits / 8 + kv_values / kv_group_size * 2 * element)
    return ModelCosts(
        body_weights=sum(size for layer, size, _ in weights if layer is not None),
        head_weights=sum(size for layer, size, _ in weights if layer is None) + (embedding_values if tied else 0),
        attention_width=layers * heads * head_dim,
        weight_bytes=all_bytes - (0 if tied else embedding_bytes),
        kv_bytes_per_token=kv_bytes,
    )


def forward_passes(tokens: int, step_size: int) -> int:
    """Forward passes a prefill of ``tokens`` makes: chunks of all but the last token, then the last."""
    return math.ceil((tokens - 1) / step_size) + 1
