"""The sizes a memory estimate needs, read from the model's own mlx-lm module, built lazily.

Building an mlx-lm model only records its initializers: no weight is computed and no memory
is taken, but every parameter's shape and dtype is known. So the sizes come from the
architecture's own code (any mlx-lm ``model_type``, a preset or a local directory's
config.json), quantization and LoRA applied the way the workloads apply them.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from mlxbench.workloads import models


@dataclass(frozen=True)
class Shapes:
    """A model's dimensions and the bytes its parameters take as a case holds them."""

    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    dtype_bytes: int  # of activations: the weights' floating dtype
    weight_bytes: int  # every parameter as held: packed weights, scales and biases included
    float_weight_bytes: int  # the same model unquantized, at dtype
    trainable_bytes: int  # what the optimizer updates (all weights, or the LoRA adapters)
    trained_layers: int  # blocks from the lowest trained one to the top (gradients flow through them)

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim


def text_config(config: dict) -> dict:
    """The language model's part of a config (multimodal configs nest it under text_config)."""
    return {**config.get("text_config", {}), **config}


def _build_lazy(config: dict) -> nn.Module:
    from mlx_lm.utils import _get_classes

    model_class, args_class = _get_classes(config)
    return model_class(args_class.from_dict(config))


def _quantize_lazy(net: nn.Module, bits: int, group_size: int) -> None:
    """mlx-lm's rule: every layer that can be quantized and whose input width the group divides."""
    nn.quantize(net, group_size=group_size, bits=bits,
                class_predicate=lambda _, m: hasattr(m, "to_quantized") and m.weight.shape[-1] % group_size == 0)


def _nbytes(tree) -> int:
    return sum(v.nbytes for _, v in tree_flatten(tree) if isinstance(v, mx.array))


def shapes(model: str, dtype: str = "float32", quantization: int | None = None, group_size: int = 64,
           lora: dict | None = None) -> Shapes:
    """The Shapes of ``model`` at ``dtype``, its base quantized to ``quantization`` bits, with ``lora``."""
    config = models.config_of(model)
    net = _build_lazy(config)
    net.set_dtype(models.DTYPES[dtype])
    float_bytes = _nbytes(net.parameters())
    saved = config.get("quantization")
    if saved is not None:  # a quantized checkpoint: its layers are quantized as saved
        _quantize_lazy(net, saved["bits"], saved["group_size"])
    elif quantization is not None:
        _quantize_lazy(net, quantization, group_size)
    layers = len(net.layers)
    trained_layers = layers
    if lora is not None:
        from mlxbench.workloads._lora import add_lora
        from mlxbench.workloads._model_params import LORA_KEYS

        lora = {**LORA_KEYS, **lora}
        net.freeze()
        trained_layers = lora["layers"] or layers
        add_lora(net, trained_layers, lora["rank"], lora["scale"])
    text = text_config(config)
    heads = text["num_attention_heads"]
    hidden = text["hidden_size"]
    return Shapes(
        hidden=hidden, layers=layers, intermediate=text.get("intermediate_size") or 4 * hidden,
        heads=heads, kv_heads=text.get("num_key_value_heads") or heads,
        head_dim=text.get("head_dim") or hidden // heads, vocab=text["vocab_size"],
        dtype_bytes=models.DTYPES[dtype].size, weight_bytes=_nbytes(net.parameters()),
        float_weight_bytes=float_bytes, trainable_bytes=_nbytes(net.trainable_parameters()),
        trained_layers=trained_layers,
    )
