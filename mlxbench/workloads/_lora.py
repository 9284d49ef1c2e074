"""LoRA adapters where mlx-lm's ``linear_to_lora_layers`` puts them, built from mlx-lm's own LoRA layers.

``mlx_lm.tuner.utils`` imports ``mlx_lm.utils``, and with it the tokenizer stack and transformers: about
1.8 s of each training case's fixed cost here, for a function of thirty lines. This is that function for
LoRA (not DoRA), on the classes it would pick; ``tests/test_lora.py`` checks that both give the same
trainable parameters on the same model.
"""

from __future__ import annotations

import mlx.nn as nn
from mlx.utils import tree_unflatten

from mlxbench.workloads import models


def add_lora(net: nn.Module, layers: int, rank: int, scale: float, dropout: float = 0.0) -> None:
    """LoRA on every linear, switch and embedding layer of the last ``layers`` blocks of ``net`` (and of
    the same names outside the blocks), as ``linear_to_lora_layers(net, layers, config)`` does."""
    lora = models.mlx_lm_module("tuner.lora")
    switch = models.mlx_lm_module("models.switch_layers")
    kinds = {nn.Linear: lora.LoRALinear, nn.QuantizedLinear: lora.LoRALinear,
             switch.SwitchLinear: lora.LoRASwitchLinear, switch.QuantizedSwitchLinear: lora.LoRASwitchLinear,
             nn.Embedding: lora.LoRAEmbedding, nn.QuantizedEmbedding: lora.LoRAEmbedding}

    def convert(layer: nn.Module) -> nn.Module:
        if hasattr(layer, "to_lora"):
            return layer.to_lora(r=rank, scale=scale, dropout=dropout)
        lora_class = next(cls for base, cls in kinds.items() if isinstance(layer, base))
        return lora_class.from_base(layer, r=rank, scale=scale, dropout=dropout)

    convertible = tuple(kinds)
    keys: set[str] = set()
    for block in net.layers:
        block.apply_to_modules(lambda path, m: keys.add(path) if hasattr(m, "to_lora") or isinstance(
            m, convertible) else None)
    for block in net.layers[-max(layers, 0):]:
        converted = [(k, convert(m)) for k, m in block.named_modules() if k in keys]
        if converted:
            block.update_modules(tree_unflatten(converted))
    outside = [(k, convert(m)) for k, m in net.named_modules() if k in keys]
    if outside:
        net.update_modules(tree_unflatten(outside))
