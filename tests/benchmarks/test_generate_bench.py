"""The shipped generation kernel (prefill + greedy decode with a KV cache) on small presets."""

import pytest


@pytest.mark.parametrize("model", ["tiny", "small"])
def test_generate(benchmark_workload, model):
    benchmark_workload("generate", model=model, prompt_tokens=128, generation_tokens=32)
