"""The train workload on the tiny preset: each parameter, each rejected combination, equivalence, memory."""

import json
import subprocess
import sys

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from validation import validation_errors
from mlxbench.workloads import models
from mlxbench.results import store
from mlxbench.errors import UserError
from mlxbench.workloads import get
from mlxbench.workloads import memory_settings
from mlxbench.workloads.train import Train


def params(**overrides):
    return {**Train.defaults(), "model": "tiny", "batch_size": 4, "seq_length": 16, **overrides}


def trained(**overrides):
    workload = Train(params(**overrides), seed=0)
    workload.setup()
    workload.step()
    return workload


def weights(workload):
    return {k: np.array(v.astype(mx.float32)) for k, v in tree_flatten(workload.net.trainable_parameters())}


def errors(**overrides) -> dict[str, str]:
    return validation_errors(Train, params(**overrides))


def test_train_is_registered_under_its_name():
    assert get("train") is Train


def test_every_parameter_has_help_text():
    assert all(p.help for p in Train.params)


def test_a_step_returns_a_finite_loss_and_gradient_norm():
    figures = Train(params(), 0)
    figures.setup()
    out = figures.step()
    assert np.isfinite(out["loss"]) and out["grad_norm"] > 0


def test_steps_lower_the_loss_on_repeated_batches():
    workload = Train(params(learning_rate=1e-2), 0)
    workload.setup()
    losses = [workload.step()["loss"] for _ in range(8)]
    assert losses[-1] < losses[0]


def test_same_seed_gives_same_first_step():
    assert trained().equivalence() == trained().equivalence()


@pytest.mark.parametrize("variant", [
    {"micro_batch_size": 2}, {"micro_batch_size": 1}, {"gradient_checkpointing": True},
    {"gradient_checkpointing": True, "micro_batch_size": 2}, {"compile": False},
    {"micro_batch_size": 1, "eval_interval": None}, {"micro_batch_size": 1, "eval_interval": 2},
    {"clear_cache": False},
])
def test_equivalent_variants_make_the_baselines_update(variant):
    base, other = trained(), trained(**variant)
    rtol = base.equivalence()["rtol"]
    assert other.equivalence()["loss"] == pytest.approx(base.equivalence()["loss"], rel=rtol)
    assert other.equivalence()["grad_norm"] == pytest.approx(base.equivalence()["grad_norm"], rel=rtol)
    for name, value in weights(base).items():
        np.testing.assert_allclose(weights(other)[name], value, rtol=1e-4, atol=1e-6)


def test_equivalent_params_are_the_ones_that_must_not_change_the_result():
    assert Train.equivalent_params == {"gradient_checkpointing", "micro_batch_size", "compile", "eval_interval",
                                       "clear_cache", "distributed", *memory_settings.NAMES}


@pytest.mark.parametrize("clear_cache", [True, False])
def test_clear_cache_gives_the_buffer_cache_back_after_each_step_or_keeps_it(clear_cache):
    workload = trained(clear_cache=clear_cache)  # kept alive: its freed arrays would fill the cache
    # Cleared, only the step's few scalars freed as it returned are left; kept, its activations' buffers.
    assert (mx.get_cache_memory() < 4096) is clear_cache
    assert workload.steps_done == 1


@pytest.mark.parametrize("dtype,rtol", [("float32", 1e-4), ("bfloat16", 3e-2), ("float16", 5e-3)])
def test_equivalence_tolerance_follows_the_dtype(dtype, rtol):
    workload = trained(dtype=dtype)
    assert workload.equivalence()["rtol"] == rtol
    assert all(v.dtype == models.DTYPES[dtype] for _, v in tree_flatten(workload.net.parameters()))


def test_a_diverging_step_fails_naming_the_step_and_the_likely_cause():
    # float16 Adam without loss scaling: the second update of `tiny` already gives NaN.
    workload = Train(params(dtype="float16"), seed=0)
    workload.setup()
    workload.step()
    with pytest.raises(FloatingPointError, match=r"training diverged: the loss is nan at step 2 \(float16"):
        workload.step()


def test_a_diverged_case_is_recorded_as_an_error_and_the_sweep_goes_on(tmp_path):
    suite = tmp_path / "f16.yaml"
    suite.write_text("name: f16\nworkload: train\nwarmup: 2\nrepeat: 2\n"
                     "defaults: {model: tiny, batch_size: 4, seq_length: 16}\n"
                     "variants:\n  baseline: {dtype: float32}\n  half: {dtype: float16}\n")
    done = subprocess.run([sys.executable, "-m", "mlxbench", "run", str(suite), "--inline"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    records = store.read_records(next(tmp_path.glob("results/f16/*")))
    status = {r.variant: r.status for r in records}
    assert status == {"baseline": "ok", "half": "error"}
    half = next(r for r in records if r.variant == "half")
    assert half.error["message"].startswith("FloatingPointError: training diverged")


def test_gradient_checkpointing_leaves_other_models_untouched():
    checkpointed = trained(gradient_checkpointing=True)
    plain = Train(params(), 0)
    plain.setup()
    assert type(checkpointed.net.layers[0]).__name__.startswith("Checkpointed")
    assert not type(plain.net.layers[0]).__name__.startswith("Checkpointed")


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_each_optimizer_updates_the_weights(optimizer):
    before = Train(params(optimizer=optimizer, learning_rate=1e-2), 0)
    before.setup()
    start = weights(before)
    before.step()
    assert any(not np.allclose(start[k], v) for k, v in weights(before).items())


def test_learning_rate_zero_leaves_sgd_weights_unchanged():
    workload = Train(params(optimizer="sgd", learning_rate=0.0), 0)
    workload.setup()
    start = weights(workload)
    workload.step()
    for name, value in weights(workload).items():
        np.testing.assert_array_equal(value, start[name])


def test_lora_trains_only_adapters_of_the_last_layers():
    workload = trained(lora={"rank": 2, "layers": 1, "scale": 10.0})
    names = [k for k, _ in tree_flatten(workload.net.trainable_parameters())]
    assert names and all(k.split(".")[-1] in ("lora_a", "lora_b") for k in names)
    assert all(".layers.1." in k for k in names)
    assert workload.net.layers[1].self_attn.q_proj.scale == 10.0


@pytest.mark.parametrize("bits", [4, 8])
def test_quantization_makes_a_quantized_frozen_base(bits):
    workload = trained(lora={"rank": 2}, quantization=bits, group_size=32)
    q_proj = workload.net.layers[0].self_attn.q_proj.linear
    assert isinstance(q_proj, nn.QuantizedLinear) and q_proj.bits == bits
    assert np.isfinite(workload.equivalence()["loss"])


def test_metrics_derive_rates_counts_and_flops():
    workload = trained(lora={"rank": 2})
    figures = workload.metrics({"step_time_s": {"median": 0.5}})
    assert figures["tokens_per_s"] == 4 * 16 / 0.5 and figures["samples_per_s"] == 8
    assert 0 < figures["trainable_params"] < figures["total_params"]
    full = trained().metrics({"step_time_s": {"median": 0.5}})
    assert full["trainable_params"] == full["total_params"]
    assert 0 < figures["flops_per_step"] < full["flops_per_step"]


def test_text_file_data_is_bytes_modulo_the_vocabulary(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("hello world " * 40)
    workload = Train(params(data=str(text)), 0)
    workload.setup()
    assert workload.batches[0, 0, :5].tolist() == list(b"hello")
    assert np.isfinite(workload.step()["loss"])


def test_jsonl_data_reads_text_rows(tmp_path):
    rows = tmp_path / "train.jsonl"
    rows.write_text("\n".join(json.dumps({"text": "abc " * 30}) for _ in range(4)))
    workload = Train(params(data=str(rows)), 0)
    workload.setup()
    assert workload.batches.shape[1:] == (4, 17)


def test_jsonl_without_text_is_a_user_error(tmp_path):
    rows = tmp_path / "train.jsonl"
    rows.write_text(json.dumps({"body": "x"}))
    with pytest.raises(UserError, match="line 1"):
        Train(params(data=str(rows)), 0).setup()


def test_data_shorter_than_one_batch_is_a_user_error(tmp_path):
    text = tmp_path / "short.txt"
    text.write_text("too short")
    with pytest.raises(UserError, match="expected at least 68 tokens"):
        Train(params(data=str(text)), 0).setup()


def test_a_local_model_directory_trains(tmp_path):
    models.write_model_dir("tiny", tmp_path / "tiny")
    assert not Train.check(params(model=str(tmp_path / "tiny")))
    assert np.isfinite(trained(model=str(tmp_path / "tiny")).equivalence()["loss"])


@pytest.mark.parametrize("overrides,key,words", [
    ({"micro_batch_size": 3}, "micro_batch_size", "expected a divisor of batch_size 4, got 3"),
    ({"quantization": 4}, "quantization", "expected null with full fine-tuning"),
    ({"lora": {"rank": 2}, "quantization": 7}, "quantization", "expected one of 2, 3, 4"),
    ({"lora": {"rank": 2}, "quantization": 4, "group_size": 128}, "group_size", "hidden_size of tiny is 64"),
    ({"lora": {"rank": 2}, "quantization": 4, "group_size": 48}, "group_size", "expected one of 32, 64, 128"),
    ({"lora": {"rank": 2, "alpha": 16}}, "lora.alpha", "unknown key 'alpha'"),
    ({"lora": {"rank": 0}}, "lora.rank", "expected a positive integer, got 0"),
    ({"lora": {"scale": "big"}}, "lora.scale", "expected a number"),
    ({"lora": {"layers": 3}}, "lora.layers", "expected an integer from 1 to 2"),
    ({"data": "notes.csv"}, "data", "expected a .txt or .jsonl file"),
    ({"data": "missing.txt"}, "data", "not found"),
    ({"model": "no-such-model"}, "model", "no config.json"),
])
def test_invalid_combinations_are_rejected(overrides, key, words):
    assert words in errors(**overrides)[key]


def test_valid_combinations_pass_the_check():
    assert errors(micro_batch_size=2, gradient_checkpointing=True, lora={"rank": 2, "layers": 2},
                  quantization=8, group_size=32) == {}


MEASURE = """
import json, sys
import mlxbench
import mlx.core as mx
from mlxbench.workloads.train import Train
p = {**Train.defaults(), "model": "tiny", "batch_size": 8, "seq_length": 64, **json.loads(sys.argv[1])}
w = Train(p, 0); w.setup(); w.step()
mx.clear_cache(); mx.reset_peak_memory(); w.step()
print(json.dumps({"peak": mx.get_peak_memory(), **w.equivalence()}))
"""


def test_gradient_checkpointing_and_micro_batches_lower_peak_memory():
    """Each variant in its own process, as the runner measures them, so no figure leaks into another."""
    variants = {"baseline": {}, "gc": {"gradient_checkpointing": True},
                "micro 4": {"micro_batch_size": 4}, "micro 2": {"micro_batch_size": 2}}
    runs = {}
    for name, overrides in variants.items():
        out = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(overrides)],
                             capture_output=True, text=True, check=True)
        runs[name] = json.loads(out.stdout)
    assert runs["gc"]["peak"] < runs["baseline"]["peak"]
    assert runs["micro 2"]["peak"] < runs["micro 4"]["peak"] < runs["baseline"]["peak"]
    for run in runs.values():
        assert run["loss"] == pytest.approx(runs["baseline"]["loss"], rel=run["rtol"])
        assert run["grad_norm"] == pytest.approx(runs["baseline"]["grad_norm"], rel=run["rtol"])


SUITE = """
name: tiny-training
workload: train
baseline: baseline
warmup: 1
repeat: 2
timeout: 120
defaults: {model: tiny, batch_size: 4, seq_length: 32}
variants:
  baseline: {}
  "micro-batch M=2": {micro_batch_size: 2}
  "GC only": {gradient_checkpointing: true}
  LoRA: {lora: {rank: 2}}
"""


def test_a_suite_runs_through_the_cli_into_records_with_equivalence(tmp_path):
    from mlxbench.results import store

    (tmp_path / "tiny.yaml").write_text(SUITE)
    subprocess.run([sys.executable, "-m", "mlxbench", "run", str(tmp_path / "tiny.yaml"),
                    "--out", str(tmp_path / "results"), "--no-calibrate"],
                   capture_output=True, text=True, check=True)
    run_dir = next((tmp_path / "results" / "tiny-training").iterdir())
    records = {r.variant: r for r in store.read_records(run_dir)}
    assert {r.status for r in records.values()} == {"ok"}
    assert records["baseline"].metrics["tokens_per_s"] > 0
    assert records["baseline"].metrics["loss"]["n"] == 2
    assert records["micro-batch M=2"].equivalence["matches"]
    assert records["GC only"].equivalence["matches"]
    assert records["LoRA"].equivalence is None  # LoRA changes what a step computes
