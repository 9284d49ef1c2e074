"""The load workload on the tiny preset: load and quantize timing, memory, disk sizes, validation."""

from pathlib import Path

import pytest

from validation import validation_errors
from mlxbench.workloads import models
from mlxbench.workloads import get
from mlxbench.workloads.generate import model_size_bytes
from mlxbench.run.measure import Measurement, measure
from mlxbench.workloads.load import Load, save_quantized


def params(**overrides) -> dict:
    return {**Load.defaults(), "model": "tiny", **overrides}


def run(steps: int = 2, **overrides) -> tuple[Load, Measurement]:
    """Run ``steps`` timed steps through the worker's own loop, then tear down.

    The workload keeps the last loaded model in ``net`` for the tests to inspect.
    """
    wl = Load(params(**overrides), seed=0)
    net = None
    try:
        measured = measure(wl, warmup=0, repeat=steps)
        net = wl.net
        return wl, measured
    finally:
        wl.teardown()
        wl.net = net


def errors(**overrides) -> dict[str, str]:
    return validation_errors(Load, params(**overrides))


@pytest.fixture(scope="module")
def unquantized():
    return run()


@pytest.fixture(scope="module")
def quantized_4bit():
    return run(quantization=4, group_size=32)


def test_workload_is_registered_as_load():
    assert get("load") is Load


def test_every_step_times_the_load_and_nothing_else_without_quantization(unquantized):
    _, measured = unquantized
    samples = measured.samples
    assert set(samples) == {"step_time_s", "load_time_s"} and len(samples["load_time_s"]) == 2
    assert all(0 < load <= step for load, step in zip(samples["load_time_s"], samples["step_time_s"], strict=True))


def test_quantization_is_timed_apart_from_the_load(quantized_4bit):
    _, measured = quantized_4bit
    samples = measured.samples
    assert set(samples) == {"step_time_s", "load_time_s", "quantize_time_s"}
    assert all(0 < quantize and load + quantize <= step for load, quantize, step in
               zip(samples["load_time_s"], samples["quantize_time_s"], samples["step_time_s"], strict=True))


def test_the_loaded_model_is_the_preset_with_every_weight(unquantized):
    wl, _ = unquantized
    assert models.parameter_count(wl.net) == models.parameter_count(models.build("tiny")[0])


def test_disk_size_is_the_weights_in_float32_plus_the_file_header(unquantized):
    wl, measured = unquantized
    metrics = measured.metrics
    assert model_size_bytes(wl.net) <= metrics["disk_size_bytes"] < model_size_bytes(wl.net) + 16 * 1024


def test_peak_memory_of_the_load_holds_at_least_the_weights(unquantized):
    wl, measured = unquantized
    metrics = measured.metrics
    assert metrics["peak_load_memory_bytes"] >= model_size_bytes(wl.net)
    assert metrics["peak_load_rss_bytes"] > metrics["peak_load_memory_bytes"]


def test_quantized_disk_size_is_the_quantized_weights_plus_the_file_header(quantized_4bit):
    wl, measured = quantized_4bit
    metrics = measured.metrics
    assert model_size_bytes(wl.net) <= metrics["quantized_disk_size_bytes"] < model_size_bytes(wl.net) + 16 * 1024


def test_quantized_disk_size_shrinks_about_as_bits_per_weight_do(quantized_4bit):
    from mlx_lm.utils import compute_bits_per_weight

    wl, measured = quantized_4bit
    metrics = measured.metrics
    ratio = metrics["quantized_disk_size_bytes"] / metrics["disk_size_bytes"]
    # 4-bit weights with a float32 scale and bias per 32 weights: 6 bits per weight, not 4.
    assert ratio == pytest.approx(compute_bits_per_weight(wl.net) / 32, rel=0.1)
    assert metrics["compression_ratio"] == pytest.approx(1 / ratio)


def test_dtype_writes_the_preset_in_that_dtype(unquantized):
    half = run(steps=1, dtype="bfloat16")[1].metrics
    assert half["disk_size_bytes"] == pytest.approx(unquantized[1].metrics["disk_size_bytes"] / 2, rel=0.05)


def test_a_quantized_model_saves_as_a_directory_mlx_lm_loads_back(tmp_path):
    from mlx_lm.utils import load_model

    net = models.build("tiny")[0]
    models.quantize(net, 4, 32)
    path = save_quantized(net, models.preset_config("tiny"), 4, 32, tmp_path / "q4")
    loaded, _ = load_model(path)
    assert model_size_bytes(loaded) == model_size_bytes(net)


def test_a_local_model_directory_loads_in_place(tmp_path):
    path = models.write_model_dir("tiny", tmp_path / "tiny")
    wl, measured = run(steps=1, model=str(path))
    assert wl.path == path and measured.metrics["disk_size_bytes"] == (path / "model.safetensors").stat().st_size
    assert path.is_dir()  # teardown never removes the user's directory


def test_teardown_removes_the_preset_written_for_the_load():
    wl, _ = run(steps=1)
    assert not Path(wl.tmp).exists()


def test_defaults_are_valid_on_tiny():
    assert errors() == {}


@pytest.mark.parametrize("key, value, expected", [
    ("quantization", 7, "expected one of 2, 3, 4, 5, 6, 8 or null, got 7"),
    ("group_size", 100, "expected one of 32, 64, 128, got 100"),
    ("dtype", "int8", "expected one of 'float32', 'bfloat16', 'float16' or null, got 'int8'"),
])
def test_out_of_range_parameter_is_rejected(key, value, expected):
    assert errors(**{key: value}) == {key: expected}


def test_group_size_that_does_not_divide_the_layer_width_is_rejected():
    assert errors(quantization=4, group_size=128) == {
        "group_size": "expected a divisor of every layer's input width (hidden_size of tiny is 64), got 128"}


def test_dtype_of_a_local_directory_is_rejected(tmp_path):
    path = models.write_model_dir("tiny", tmp_path / "tiny")
    assert errors(model=str(path), dtype="float16") == {
        "dtype": "expected null for a local model directory (it loads in the dtype it was saved in), "
                 "got 'float16'"}


def test_a_missing_model_directory_is_rejected(tmp_path):
    assert "no config.json there" in errors(model=str(tmp_path / "absent"))["model"]
