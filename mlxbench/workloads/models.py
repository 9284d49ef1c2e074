"""Models to measure: mlx-lm architectures with seeded random weights, or a local model directory.

Speed and memory do not depend on the weights' values, so presets need no
download: the architecture and shapes are mlx-lm's own, the weights come from
MLX's initializers under a fixed seed.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
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
    "small": ("llama", dict(hidden_size=512, num_hidden_layers=8, intermediate_size=1408,
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

# What MLX's affine quantization supports (mx.quantize).
QUANT_BITS = (2, 3, 4, 5, 6, 8)
QUANT_GROUP_SIZES = (32, 64, 128)


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


def config_of(model: str) -> dict:
    """The config.json-style dict of a preset or a local model directory (no weights loaded)."""
    if model in PRESETS:
        return preset_config(model)
    return json.loads((Path(model).expanduser() / "config.json").read_text())


def preset_config(name: str) -> dict:
    """The config.json-style dict of a preset (with model_type)."""
    module, config = PRESETS[name]
    return {"model_type": module, **config}


def architecture(model_type: str):
    """mlx-lm's module of ``model_type`` (``mlx_lm.models.<model_type>``), imported without first running
    mlx_lm's package ``__init__`` (see ``mlx_lm_module``)."""
    return mlx_lm_module(f"models.{model_type}")


def mlx_lm_module(name: str):
    """``mlx_lm.<name>``, imported without running the ``__init__`` of mlx_lm or of mlx_lm.tuner where
    nothing has imported them yet.

    Those ``__init__``s import convert, generate, the trainer and the tokenizer stack (transformers, and
    torch where installed): seconds of a worker's fixed cost that a random-weight model never uses. Each
    package is entered unexecuted; the first attribute read from it (``mlx_lm.load``, ``__version__``,
    ``mlx_lm.tuner.train``) runs its ``__init__`` then (PEP 562), so later users see the whole package.
    Submodules import as usual.
    """
    for package_name in ("mlx_lm", "mlx_lm.tuner"):
        if package_name not in sys.modules and (spec := importlib.util.find_spec(package_name)) is not None:
            sys.modules[package_name] = _unexecuted(spec)
    return importlib.import_module(f"mlx_lm.{name}")


def _unexecuted(spec):
    package = importlib.util.module_from_spec(spec)

    def complete(name: str):
        del package.__dict__["__getattr__"]
        spec.loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = complete
    return package


def build(model: str, seed: int = 0, dtype: str = "float32") -> tuple[nn.Module, dict]:
    """The model and its config: a preset with weights drawn from ``seed``, or a local directory."""
    if (problem := check_model(model)) is not None:
        raise UserError(f"model: {problem}")
    if model in PRESETS:
        config = preset_config(model)
        arch = architecture(config["model_type"])
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
    Its decoder is byte-level, as Llama 3's and Qwen's are, so mlx-lm streams text with its
    incremental BPE detokenizer, not the naive one that re-decodes every token so far at each
    step (measured here: mlx-lm's own benchmark decoded ~3% slower with the naive one).
    """
    from tokenizers import Tokenizer, decoders
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {f"t{i}": i for i in range(vocab_size)}
    tok = Tokenizer(WordLevel(vocab, unk_token="t0"))
    tok.pre_tokenizer = Whitespace()
    tok.decoder = decoders.ByteLevel()
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


def _input_widths(config: dict) -> dict[str, int]:
    """Input width of each kind of layer quantization touches, from a transformer config."""
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    return {"hidden_size": hidden, "attention width (heads × head_dim)": heads * head_dim,
            "intermediate_size": config["intermediate_size"]}


def quantization_problem(model: str, bits: int, group_size: int) -> tuple[str, str] | None:
    """None if ``model`` can be quantized to ``bits`` with ``group_size``, else (field, what is wrong).

    field is "bits", "group_size" or "model". Every quantized layer's input width must be a
    multiple of the group size: mlx-lm silently leaves such layers in full precision, which
    would misreport the model's size.
    """
    if bits not in QUANT_BITS:
        return "bits", f"expected one of {', '.join(map(str, QUANT_BITS))}, got {bits!r}"
    if group_size not in QUANT_GROUP_SIZES:
        return "group_size", f"expected one of {', '.join(map(str, QUANT_GROUP_SIZES))}, got {group_size!r}"
    if check_model(model) is not None:
        return None  # the model key reports its own problem
    config = config_of(model)
    if "quantization" in config:
        return "model", f"expected a model in full precision, got {model!r} (already quantized)"
    for what, width in _input_widths(config).items():
        if width % group_size:
            return "group_size", (f"expected a divisor of every layer's input width "
                                  f"({what} of {model} is {width}), got {group_size}")
    return None


def check_quantization(model: str, bits: int, group_size: int) -> str | None:
    """None if ``model`` can be quantized to ``bits`` with ``group_size``, else '<field>: what is wrong'."""
    problem = quantization_problem(model, bits, group_size)
    return None if problem is None else (problem[1] if problem[0] == "model" else ": ".join(problem))


def quantize(net: nn.Module, bits: int, group_size: int) -> nn.Module:
    """Quantize every Linear and Embedding of ``net`` in place (MLX affine); returns ``net``.

    Raises UserError, instead of skipping a layer, when a layer's width does not fit ``group_size``.
    """
    if bits not in QUANT_BITS or group_size not in QUANT_GROUP_SIZES:
        raise UserError(f"quantization: expected bits in {QUANT_BITS} and group_size in "
                        f"{QUANT_GROUP_SIZES}, got bits={bits!r}, group_size={group_size!r}")
    for name, module in net.named_modules():
        if isinstance(module, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
            raise UserError(f"quantization: expected a model in full precision, got {name} already quantized")
        if hasattr(module, "to_quantized") and module.weight.shape[-1] % group_size:
            raise UserError(f"quantization: group_size: expected a divisor of every layer's input width "
                            f"({name} has {module.weight.shape[-1]}), got {group_size}")
    nn.quantize(net, group_size=group_size, bits=bits)
    mx.eval(net.parameters())
    return net


def logical_parameter_count(net: nn.Module) -> int:
    """Parameters as the unquantized model has them: a packed weight counts the values it holds."""
    total = 0
    for _, module in net.named_modules():
        own = {k: v for k, v in module.items() if isinstance(v, mx.array)}
        if isinstance(module, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
            # scales and biases are quantization metadata, not model parameters
            total += own.pop("weight").size * 32 // module.bits
            own.pop("scales", None)
            own.pop("biases", None)
        total += sum(v.size for v in own.values())
    return total


def _matmul_weights(net: nn.Module) -> list[tuple[int | None, int, bool]]:
    """(transformer layer index or None, logical size, trainable) of every weight used in a matmul."""
    import re

    from mlx.utils import tree_flatten

    trainable = {k for k, _ in tree_flatten(net.trainable_parameters())}
    weights = []
    for name, module in net.named_modules():
        found = re.search(r"(?:^|\.)layers\.(\d+)\.", name + ".")
        layer = int(found.group(1)) if found else None
        prefix = f"{name}." if name else ""
        if isinstance(module, (nn.Linear, nn.QuantizedLinear)):
            size = module.weight.size * (32 // module.bits if isinstance(module, nn.QuantizedLinear) else 1)
            weights.append((layer, size, prefix + "weight" in trainable))
        for adapter in ("lora_a", "lora_b"):
            if isinstance(module.get(adapter), mx.array):
                weights.append((layer, module[adapter].size, prefix + adapter in trainable))
    return weights


def training_flops_per_token(net: nn.Module, config: dict, seq_length: int) -> int:
    """Model FLOPs per trained token of one forward + backward pass (no recomputation counted).

    Per matmul weight of N values: 2N forward, 2N for the gradient of its input (only where
    a trainable weight lies below it), 2N for its own gradient (only if trainable). Full
    fine-tuning gives the usual 6N; LoRA on a frozen base about 4N. Attention adds, per layer,
    4·T·d forward and 8·T·d backward (T = seq_length, d = heads × head_dim, causal mask not
    halved): PaLM's 12·L·T·d for full training. Embedding lookups cost none; a tied embedding
    counts once more as the output projection.
    """
    from mlx.utils import tree_flatten

    weights = _matmul_weights(net)
    if config.get("tie_word_embeddings", False):
        embedding = _find_embedding(net)
        size = embedding.weight.size * (32 // embedding.bits if isinstance(embedding, nn.QuantizedEmbedding) else 1)
        weights.append((None, size, bool(tree_flatten(embedding.trainable_parameters()))))
    layers = config["num_hidden_layers"]
    trainable_layers = [layer for layer, _, trainable in weights if trainable and layer is not None]
    embedding_trainable = any("embed" in k for k, _ in tree_flatten(net.trainable_parameters()))
    lowest = 0 if embedding_trainable else min(trainable_layers, default=layers)
    needs_input_grad = any(trainable for _, _, trainable in weights)

    flops = 0
    for layer, size, trainable in weights:
        flops += 2 * size
        if needs_input_grad and (layer is None or layer >= lowest):
            flops += 2 * size
        if trainable:
            flops += 2 * size
    heads = config["num_attention_heads"]
    width = heads * (config.get("head_dim") or config["hidden_size"] // heads)
    flops += 4 * layers * seq_length * width
    if needs_input_grad:
        flops += 8 * (layers - lowest) * seq_length * width
    return flops


def _find_embedding(net: nn.Module) -> nn.Module:
    for _, module in net.named_modules():
        if isinstance(module, (nn.Embedding, nn.QuantizedEmbedding)):
            return module
    raise ValueError("model has tied word embeddings but no embedding layer")
