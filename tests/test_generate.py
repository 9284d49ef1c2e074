"""The generate workload on the tiny preset: the kernel's tokens, every parameter, every
rejected combination, and what quantization saves and costs."""

import json
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import pytest

from validation import validation_errors
from mlxbench.workloads import models
from mlxbench.run import measure as loop
from mlxbench.workloads import get
from mlxbench.workloads.generate import Generate, bits_per_weight, generate, make_prompts

ROOT = Path(__file__).resolve().parent.parent
SHORT = {"model": "tiny", "prompt_tokens": 12, "generation_tokens": 6}


def params(**overrides) -> dict:
    return {**Generate.defaults(), **SHORT, **overrides}


def measure(steps: int = 2, **overrides) -> dict:
    """Run ``steps`` timed steps through the worker's own loop and return the record's metrics."""
    wl = Generate(params(**overrides), seed=0)
    try:
        return loop.measure(wl, warmup=0, repeat=steps).metrics
    finally:
        wl.teardown()


def errors(**overrides) -> dict[str, str]:
    return validation_errors(Generate, params(**overrides))


def prompts(batch_size: int = 1) -> mx.array:
    return make_prompts(256, batch_size, SHORT["prompt_tokens"], seed=0)


@pytest.fixture(scope="module")
def tiny():
    return models.build("tiny", seed=0)[0]


@pytest.fixture(scope="module")
def wide_heads_dir(tmp_path_factory):
    """A local llama with head_dim 32, wide enough for a quantized KV cache (tiny's is 16)."""
    from mlx_lm.models import llama
    from mlx_lm.utils import save_config, save_model

    config = {**models.preset_config("tiny"), "num_attention_heads": 2, "num_key_value_heads": 1}
    mx.random.seed(0)
    path = tmp_path_factory.mktemp("wide-heads")
    save_model(path, llama.Model(llama.ModelArgs.from_dict(config)))
    save_config(config, config_path=path / "config.json")
    return str(path)


# The kernel


def test_workload_is_registered_as_generate():
    assert get("generate") is Generate


def test_every_row_decodes_generation_tokens(tiny):
    out = generate(tiny, prompts(batch_size=3), generation_tokens=5)
    assert out.tokens.shape == (3, 5)


def test_tokens_are_mlx_lm_generate_steps_greedy_tokens(tiny):
    from mlx_lm.generate import generate_step

    prompt = prompts()
    expected = [t for t, _ in generate_step(prompt[0], tiny, max_tokens=6)]
    assert generate(tiny, prompt, generation_tokens=6).tokens[0].tolist() == expected


def test_a_quantized_kv_cache_decodes_mlx_lm_generate_steps_tokens_and_cache(wide_heads_dir):
    # workloads/_generation_runtime mirrors mlx_lm.generate's stream, wired limit and KV quantization.
    from mlx_lm.generate import generate_step
    from mlx_lm.models.cache import make_prompt_cache

    model = models.build(wide_heads_dir)[0]
    prompt = prompts()
    theirs = make_prompt_cache(model)
    expected = [t for t, _ in generate_step(prompt[0], model, max_tokens=6, prompt_cache=theirs, kv_bits=4,
                                            kv_group_size=32, quantized_kv_start=0)]
    ours = make_prompt_cache(model)
    assert generate(model, prompt, 6, kv_bits=4, kv_group_size=32, cache=ours).tokens[0].tolist() == expected
    assert [type(c).__name__ for c in ours] == [type(c).__name__ for c in theirs] == ["QuantizedKVCache"] * 2


def test_a_row_decodes_the_same_tokens_in_a_batch_as_alone(tiny):
    batch = generate(tiny, prompts(batch_size=2), generation_tokens=6).tokens
    alone = generate(tiny, prompts(batch_size=2)[1:], generation_tokens=6).tokens
    assert batch[1].tolist() == alone[0].tolist()


def test_prefill_step_size_changes_the_chunking_not_the_tokens(tiny):
    whole = generate(tiny, prompts(), 6, prefill_step_size=2048).tokens
    chunked = generate(tiny, prompts(), 6, prefill_step_size=1).tokens
    assert chunked.tolist() == whole.tolist()


def test_phases_are_timed_and_prefill_lies_within_time_to_first_token(tiny):
    out = generate(tiny, prompts(), 6)
    assert 0 < out.prefill_s <= out.ttft_s and out.decode_s > 0


def test_prompt_rows_do_not_depend_on_the_batch_size():
    assert make_prompts(256, 4, 12, seed=3)[:2].tolist() == make_prompts(256, 2, 12, seed=3).tolist()


# Metrics


def test_metrics_report_speeds_end_to_end_time_and_size():
    m = measure()
    for name in ("prefill_tokens_per_s", "decode_tokens_per_s", "decode_tokens_per_s_total",
                 "model_size_bytes"):
        assert m[name] > 0, name
    assert m["step_time_s"]["median"] > 0 and "end_to_end_s" not in m  # the step time is end to end
    assert m["bits_per_weight"] == 32.0
    assert "kl_divergence" not in m


def test_each_timed_step_reports_its_phases_within_the_step_time_the_loop_took():
    m = measure(steps=2)
    for name in ("ttft_s", "prefill_s", "decode_s", "step_time_s"):
        assert m[name]["n"] == 2, name
    for ttft, decode, step in zip(m["ttft_s"]["samples"], m["decode_s"]["samples"], m["step_time_s"]["samples"]):
        assert ttft + decode <= step


def test_total_decode_speed_is_the_batch_times_the_per_sequence_speed():
    m = measure(batch_size=3)
    assert m["decode_tokens_per_s_total"] == pytest.approx(3 * m["decode_tokens_per_s"])


@pytest.mark.parametrize("bits", [None, 4, 8])
def test_bits_per_weight_is_mlx_lms(bits):
    from mlx_lm.utils import compute_bits_per_weight

    net = models.build("tiny", seed=0)[0]
    if bits:
        models.quantize(net, bits, 32)
    assert bits_per_weight(net) == compute_bits_per_weight(net)


def test_dtype_sets_the_bits_per_weight():
    assert measure(steps=1, dtype="bfloat16")["bits_per_weight"] == 16.0
    assert measure(steps=1, dtype="float16")["bits_per_weight"] == 16.0


@pytest.fixture(scope="module")
def by_bits():
    return {bits: measure(steps=1, quantization=bits, group_size=32) for bits in (None, 2, 3, 4, 5, 6, 8)}


def test_quantized_size_is_in_proportion_to_bits_per_weight(by_bits):
    full = by_bits[None]
    for bits in (2, 3, 4, 5, 6, 8):
        m = by_bits[bits]
        assert m["model_size_bytes"] / full["model_size_bytes"] == pytest.approx(
            m["bits_per_weight"] / full["bits_per_weight"], rel=1e-6)
        assert m["compression_ratio"] == pytest.approx(full["model_size_bytes"] / m["model_size_bytes"])


def test_fewer_bits_take_fewer_bytes(by_bits):
    sizes = [by_bits[bits]["model_size_bytes"] for bits in (8, 6, 5, 4, 3, 2)]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 6


def test_logit_error_is_nonzero_and_grows_as_bits_fall(by_bits):
    kl = [by_bits[bits]["kl_divergence"] for bits in (8, 4, 2)]
    assert 0 < kl[0] < kl[1] < kl[2]
    assert all(0 <= by_bits[bits]["top1_agreement"] <= 1 for bits in (8, 4, 2))


def test_larger_groups_store_fewer_scales():
    assert measure(steps=1, quantization=4, group_size=64)["bits_per_weight"] < \
        measure(steps=1, quantization=4, group_size=32)["bits_per_weight"]


def test_quantized_kv_cache_reports_its_logit_error_larger_at_fewer_bits(wide_heads_dir):
    kl = {bits: measure(steps=1, model=wide_heads_dir, kv_bits=bits, kv_group_size=32)["kl_divergence"]
          for bits in (8, 4)}
    assert 0 < kl[8] < kl[4]


def test_a_local_model_directory_generates_as_the_preset_it_was_written_from(tmp_path, tiny):
    path = models.write_model_dir("tiny", tmp_path / "tiny", seed=0)
    local = models.build(str(path))[0]
    assert generate(local, prompts(), 6).tokens.tolist() == generate(tiny, prompts(), 6).tokens.tolist()


# Validation


def test_defaults_are_valid_on_tiny():
    assert errors() == {}


@pytest.mark.parametrize("key, value, expected", [
    ("quantization", 7, "expected one of 2, 3, 4, 5, 6, 8 or null, got 7"),
    ("group_size", 48, "expected one of 32, 64, 128, got 48"),
    ("kv_bits", 2, "expected one of 4, 8 or null, got 2"),
    ("kv_group_size", 16, "expected one of 32, 64, 128, got 16"),
    ("dtype", "float64", "expected one of 'float32', 'bfloat16', 'float16', got 'float64'"),
    ("prefill_step_size", 0, "expected a positive integer, got 0"),
    ("prompt_tokens", 0, "expected a positive integer, got 0"),
    ("batch_size", 0, "expected a positive integer, got 0"),
    ("generation_tokens", 1, "expected an integer ≥ 2, got 1"),
])
def test_out_of_range_parameter_is_rejected(key, value, expected):
    assert errors(**{key: value}) == {key: expected}


def test_group_size_that_does_not_divide_the_layer_width_is_rejected():
    assert errors(quantization=4, group_size=128) == {
        "group_size": "expected a divisor of every layer's input width (hidden_size of tiny is 64), got 128"}


def test_group_size_is_not_checked_without_quantization():
    assert errors(group_size=128) == {}


def test_kv_bits_on_a_head_dimension_the_group_does_not_divide_is_rejected():
    assert errors(kv_bits=4) == {"kv_bits": "expected null: the KV cache is quantized along the head "
                                            "dimension, 16 in tiny, which kv_group_size 64 does not divide, got 4"}


def test_kv_bits_on_a_model_whose_cache_mlx_lm_cannot_quantize_is_rejected(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "mamba", "vocab_size": 256, "hidden_size": 64, "intermediate_size": 128,
        "state_size": 8, "num_hidden_layers": 1, "conv_kernel": 4, "use_bias": False,
        "use_conv_bias": True, "time_step_rank": 4}))
    assert errors(model=str(tmp_path), kv_bits=8) == {
        "kv_bits": "expected null: mlx-lm cannot quantize the ArraysCache of mamba models, got 8"}


def test_quantizing_an_already_quantized_model_is_rejected(tmp_path, tiny):
    from mlxbench.workloads.load import save_quantized

    net = models.build("tiny", seed=0)[0]
    models.quantize(net, 4, 32)
    path = save_quantized(net, models.preset_config("tiny"), 4, 32, tmp_path / "q4")
    message = errors(model=str(path), quantization=8)["quantization"]
    assert message.startswith("expected a model in full precision") and "already quantized" in message


def test_a_model_that_is_neither_preset_nor_directory_is_rejected():
    assert "no config.json there" in errors(model="no-such-model")["model"]


# Through the command line


def mlxbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlxbench", *args], capture_output=True, text=True)


def test_a_generate_suite_runs_end_to_end_into_records(tmp_path):
    from mlxbench.results.store import read_records

    suite = tmp_path / "gen.yaml"
    suite.write_text(
        "name: gen\nworkload: generate\nwarmup: 1\nrepeat: 2\n"
        "defaults: {model: tiny, prompt_tokens: 12, generation_tokens: 6, group_size: 32}\n"
        "variants:\n  float32: {}\n  4-bit: {quantization: 4}\n")
    out = mlxbench("run", str(suite), "--out", str(tmp_path / "results"), "--no-calibrate")
    assert out.returncode == 0, out.stderr
    [run_dir] = (tmp_path / "results" / "gen").iterdir()
    records = {r.variant: r for r in read_records(run_dir)}
    assert {r.status for r in records.values()} == {"ok"}
    for record in records.values():
        assert len(record.metrics["decode_s"]["samples"]) == 2
        assert record.metrics["decode_tokens_per_s"] > 0
    assert records["4-bit"].metrics["kl_divergence"] > 0
    assert records["4-bit"].metrics["model_size_bytes"] < records["float32"].metrics["model_size_bytes"]


def test_a_suite_with_a_rejected_combination_fails_in_one_line_naming_the_key(tmp_path):
    suite = tmp_path / "bad.yaml"
    suite.write_text("name: bad\nworkload: generate\ndefaults: {model: tiny}\n"
                     "variants:\n  q: {quantization: 4, group_size: 128}\n")
    out = mlxbench("run", str(suite), "--dry-run", "--out", str(tmp_path / "results"))
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert "group_size" in line and "expected a divisor" in line and "got 128" in line


@pytest.mark.parametrize("suite", ["suites/generation.yaml", "suites/quantization.yaml",
                                   "suites/long-context.yaml"])
@pytest.mark.parametrize("profile", ["full", "quick"])
def test_shipped_suite_is_valid(suite, profile):
    out = mlxbench("run", str(ROOT / suite), "--profile", profile, "--dry-run")
    assert out.returncode == 0, out.stderr
