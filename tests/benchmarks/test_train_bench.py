"""One optimizer update of the shipped training workload (full fine-tune) on small presets."""

import pytest


@pytest.mark.parametrize("model", ["tiny", "small"])
def test_train_step(benchmark_workload, model):
    benchmark_workload("train", model=model, batch_size=2, seq_length=128)
