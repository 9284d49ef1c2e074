"""Model presets, local model directories, quantization and FLOP counting."""

import mlx.nn as nn
import numpy as np
import pytest

from mlxbench.workloads import models
from mlxbench.errors import UserError


def test_a_preset_is_the_same_model_for_the_same_seed():
    (a, _), (b, _) = models.build("tiny", seed=3), models.build("tiny", seed=3)
    np.testing.assert_array_equal(np.array(a.layers[0].self_attn.q_proj.weight),
                                  np.array(b.layers[0].self_attn.q_proj.weight))


def test_a_different_seed_gives_different_weights():
    (a, _), (b, _) = models.build("tiny", seed=0), models.build("tiny", seed=1)
    assert not np.allclose(np.array(a.layers[0].mlp.up_proj.weight), np.array(b.layers[0].mlp.up_proj.weight))


@pytest.mark.parametrize("dtype", list(models.DTYPES))
def test_build_casts_to_the_dtype(dtype):
    net, _ = models.build("tiny", dtype=dtype)
    assert net.layers[0].mlp.down_proj.weight.dtype == models.DTYPES[dtype]


def test_presets_have_their_advertised_sizes():
    """Counted from the configs (building the large presets would take their full memory)."""
    small, medium = models.config_of("small"), models.config_of("medium")
    assert small["hidden_size"] == 512 and medium["hidden_size"] == 768
    net, _ = models.build("small")
    assert 25e6 < models.parameter_count(net) < 35e6


def test_an_unknown_model_names_the_presets():
    assert "tiny" in models.check_model("nope") and "no config.json" in models.check_model("nope")
    with pytest.raises(UserError):
        models.build("nope")


def test_a_written_model_directory_loads_back_with_the_same_weights(tmp_path):
    path = models.write_model_dir("tiny", tmp_path / "tiny", seed=5)
    assert models.check_model(str(path)) is None
    loaded, config = models.build(str(path))
    original, _ = models.build("tiny", seed=5)
    assert config["hidden_size"] == 64
    np.testing.assert_array_equal(np.array(loaded.layers[1].mlp.gate_proj.weight),
                                  np.array(original.layers[1].mlp.gate_proj.weight))


@pytest.mark.parametrize("bits", [4, 8])
def test_quantize_replaces_every_linear_and_the_embedding(bits):
    net, _ = models.build("tiny")
    models.quantize(net, bits, 32)
    assert isinstance(net.layers[0].mlp.up_proj, nn.QuantizedLinear)
    assert isinstance(net.model.embed_tokens, nn.QuantizedEmbedding)
    assert net.layers[1].self_attn.o_proj.bits == bits


def test_quantize_rejects_a_group_size_a_layer_does_not_fit():
    net, _ = models.build("tiny")
    with pytest.raises(UserError, match="expected a divisor of every layer's input width"):
        models.quantize(net, 4, 128)


def test_quantize_rejects_an_already_quantized_model():
    net, _ = models.build("tiny")
    models.quantize(net, 4, 32)
    with pytest.raises(UserError, match="already quantized"):
        models.quantize(net, 4, 32)


@pytest.mark.parametrize("bits,group_size,words", [
    (4, 64, None), (8, 32, None), (7, 64, "bits: expected one of"),
    (4, 16, "group_size: expected one of 32, 64, 128"), (4, 128, "hidden_size of tiny is 64"),
])
def test_check_quantization(bits, group_size, words):
    problem = models.check_quantization("tiny", bits, group_size)
    assert problem is None if words is None else words in problem


def test_every_preset_fits_the_default_group_size():
    assert all(models.check_quantization(name, 4, 64) is None for name in models.PRESETS)


def test_logical_parameter_count_survives_quantization():
    net, _ = models.build("tiny")
    before = models.logical_parameter_count(net)
    assert before == models.parameter_count(net)
    models.quantize(net, 4, 32)
    assert models.logical_parameter_count(net) == before > models.parameter_count(net)


def test_full_training_flops_are_six_n_plus_the_attention_term():
    net, config = models.build("tiny")
    n_matmul = models.parameter_count(net) - 2 * 64 * 2 - 64  # norms are not matmuls
    # tied embedding: its V×d counted once, as the output projection
    expected = 6 * n_matmul + 12 * 2 * 32 * 64
    assert models.training_flops_per_token(net, config, seq_length=32) == expected


def test_a_frozen_model_costs_only_the_forward_pass():
    net, config = models.build("tiny")
    net.freeze()
    assert models.training_flops_per_token(net, config, 32) * 3 == models.training_flops_per_token(
        models.build("tiny")[0], config, 32)


def test_a_random_weight_model_is_built_without_the_tokenizer_stack_and_mlx_lm_stays_whole():
    # mlx_lm's __init__ imports transformers (and torch where installed): seconds a worker need not pay.
    import subprocess
    import sys

    code = ("import sys, mlxbench\nfrom mlxbench.workloads.models import build\nbuild('tiny')\n"
            "print('transformers' in sys.modules)\nimport mlx_lm\nprint(callable(mlx_lm.load), bool(mlx_lm.__version__))\n"
            "from mlx_lm.utils import load_model\nprint(load_model is not None)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "True", "True"]
