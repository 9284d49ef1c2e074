"""What mlx-lm's generation loop runs in, without importing ``mlx_lm.generate``: that module imports
transformers' tokenizer classes at its top, 1.3 s of every generation case's fixed cost here, for three
small helpers. Each function below mirrors the ``mlx_lm.generate`` one of the same name;
``tests/test_generate.py`` checks the tokens and the KV cache against mlx-lm's own ``generate_step``.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

import mlx.core as mx


@lru_cache(maxsize=None)
def generation_stream() -> mx.Stream:
    """The stream generation runs on (mlx-lm's module-level ``generation_stream``)."""
    return mx.new_stream(mx.default_device())


def _recommended_wired_bytes() -> int | None:
    if not mx.metal.is_available():
        return None
    info = mx.device_info() if hasattr(mx, "device_info") else mx.metal.device_info()
    return info.get("max_recommended_working_set_size")


@contextlib.contextmanager
def wired_limit(streams: list[mx.Stream]):
    """The wired limit raised to the device's recommended working set while generating (Metal only), then
    put back once ``streams`` are done, as mlx-lm's ``wired_limit`` does."""
    recommended = _recommended_wired_bytes()
    if recommended is None:
        yield
        return
    old_limit = mx.set_wired_limit(recommended)
    try:
        yield
    finally:
        for stream in streams:
            mx.synchronize(stream)
        mx.set_wired_limit(old_limit)


def maybe_quantize_kv_cache(prompt_cache: list, quantized_kv_start: int, kv_group_size: int,
                            kv_bits: int | None) -> None:
    """Each cache layer past ``quantized_kv_start`` tokens replaced by its quantized form (mlx-lm's)."""
    if kv_bits is None:
        return
    for i, layer in enumerate(prompt_cache):
        if hasattr(layer, "to_quantized") and layer.offset >= quantized_kv_start:
            prompt_cache[i] = layer.to_quantized(group_size=kv_group_size, bits=kv_bits)
