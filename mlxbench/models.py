"""Models to measure: mlx-lm architectures with seeded random weights, or a local model directory.

Speed and memory do not depend on the weights' values, so presets need no
download: the architecture and shapes are mlx-lm's own, the weights come from
MLX's initializers under a fixed seed.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn

from mlxbench.errors import UserError

# name -> (mlx_lm.models module, config). The "*-shape" presets copy real models' configs.
PRESETS: dict[str, tuple[str, dict]] = {
    "tiny": ("llama", dict(hidden_size=64, num_hidden_layers=2, intermediate_size=128,
                           num_attention_heads=4, num_key_value_heads=2, vocab_size=256,
                           rms_norm_eps=1e-5, tie_word_embeddings=True)),
    "small": ("llama", dict(hidden_size=512, num_hidden_layers=8, intermediate_size=1376,
                            num_attention_heads=8, num_key_value_heads=8, vocab_size=8192,
                            rms_norm_eps=1e-5, tie_word_embeddings=True)),
    "medium": ("llama", dict(hidden_size=768, num_hidden_layers=12, intermediate_size=2048,
                             num_attention_heads=12, num_key_value_heads=12, vocab_size=32000,
                             rms_norm_eps=1e-5, tie_word_embeddings=True)),
    # meta-llama/Llama-3.2-1B config.json
    "llama-3.2-1b-shape": ("llama", dict(
        hidden_size=2048, num_hidden_layers=16, intermediate_size=8192, num_attention_heads=32,
        num_key_value_heads=8, head_dim=64, vocab_size=128256, rms_norm_eps=1e-5,
        rope_theta=500000.0, max_position_embeddings=131072, tie_word_embeddings=True,
        rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                      "original_max_position_embeddings": 8192, "rope_type": "llama3"})),
    # Qwen/Qwen2.5-0.5B config.json
    "qwen2.5-0.5b-shape": ("qwen2", dict(
        hidden_size=896, num_hidden_layers=24, intermediate_size=4864, num_attention_heads=14,
        num_key_value_heads=2, vocab_size=151936, rms_norm_eps=1e-6, rope_theta=1000000.0,
        max_position_embeddings=32768, tie_word_embeddings=True)),
}

DTYPES = {"float32": mx.float32, "bfloat16": mx.bfloat16, "float16": mx.float16}


def is_local(model: str) -> bool:
    return model not in PRESETS


def describe_choices() -> str:
    return "a preset (" + ", ".join(PRESETS) + ") or a local model directory"


def check_model(model: str) -> str | None:
    """None if ``model`` names a preset or a model directory, else what is wrong."""
    if model in PRESETS:
        return None
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        return f"expected {describe_choices()}, got {model!r} (no config.json there)"
    return None


def preset_config(name: str) -> dict:
    """The config.json-style dict of a preset (with model_type)."""
    module, config = PRESETS[name]
    return {"model_type": module, **config}


def build(model: str, seed: int = 0, dtype: str = "float32") -> tuple[nn.Module, dict]:
    """The model and its config: a preset with weights drawn from ``seed``, or a local directory."""
    if (problem := check_model(model)) is not None:
        raise UserError(f"model: {problem}")
    if model in PRESETS:
        config = preset_config(model)
        arch = importlib.import_module(f"mlx_lm.models.{config['model_type']}")
        mx.random.seed(seed)
        net = arch.Model(arch.ModelArgs.from_dict(config))
    else:
        from mlx_lm.utils import load_model

        net, config = load_model(Path(model).expanduser())
    # Quantized checkpoints keep their integer weights; only floating weights are cast.
    net.set_dtype(DTYPES[dtype])
    mx.eval(net.parameters())
    return net, config


def parameter_count(net: nn.Module) -> int:
    from mlx.utils import tree_flatten

    return sum(v.size for _, v in tree_flatten(net.parameters()))


def _write_tokenizer(path: Path, vocab_size: int) -> None:
    """A word-level tokenizer over ``vocab_size`` made-up tokens, so mlx-lm's loader finds one.

    Token ids in a benchmark are random; the tokenizer only has to exist and cover the vocabulary.
    """
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {f"t{i}": i for i in range(vocab_size)}
    tok = Tokenizer(WordLevel(vocab, unk_token="t0"))
    tok.pre_tokenizer = Whitespace()
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "t0",
        "bos_token": "t1", "eos_token": "t2", "model_max_length": 1 << 20,
    }))


def write_model_dir(model: str, path: str | Path, seed: int = 0, dtype: str = "float32") -> Path:
    """Write a preset as a local model directory (config.json, model.safetensors, tokenizer).

    mlx-lm's own tools (``mlx_lm benchmark``, ``mlx_lm lora``) and the ``load`` workload read it.
    """
    from mlx_lm.utils import save_config, save_model

    path = Path(path)
    net, config = build(model, seed=seed, dtype=dtype)
    save_model(path, net)
    save_config(dict(config), config_path=path / "config.json")
    _write_tokenizer(path, config["vocab_size"])
    return path
