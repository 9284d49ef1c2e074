"""mlxbench's LoRA placement (workloads/_lora.py) against mlx-lm's own ``linear_to_lora_layers``, and the
fixed cost it and workloads/_generation_runtime.py exist to save: a case imports no tokenizer stack."""

import subprocess
import sys

import pytest

import mlxbench  # noqa: F401  (the BLAS before mlx.core)
from mlx.utils import tree_flatten

from mlxbench.workloads import _lora, models


def _trainable(net) -> dict:
    return {name: (tuple(p.shape), p.dtype) for name, p in tree_flatten(net.trainable_parameters())}


def _module_types(net) -> dict:
    return {name: type(m).__name__ for name, m in net.named_modules()}


@pytest.mark.parametrize("model,quantized,layers", [("tiny", None, 2), ("tiny", None, 1), ("tiny", 4, 1)])
def test_lora_goes_where_mlx_lm_puts_it(model, quantized, layers):
    from mlx_lm.tuner.utils import linear_to_lora_layers

    ours, theirs = (models.build(model, seed=0)[0] for _ in range(2))
    for net in (ours, theirs):
        if quantized:
            models.quantize(net, quantized, 64)
        net.freeze()
    _lora.add_lora(ours, layers, rank=4, scale=20.0)
    linear_to_lora_layers(theirs, layers, {"rank": 4, "scale": 20.0, "dropout": 0.0})
    assert _trainable(ours) == _trainable(theirs)
    assert _module_types(ours) == _module_types(theirs)
    assert len(_trainable(ours)) > 0


@pytest.mark.parametrize("workload,params", [
    ("train", {"model": "tiny", "batch_size": 1, "seq_length": 16, "lora": {"rank": 4, "layers": 1}}),
    ("generate", {"model": "tiny", "prompt_tokens": 8, "generation_tokens": 2, "quantization": 4, "group_size": 32}),
])
def test_a_case_imports_no_tokenizer_stack_and_no_scipy(workload, params):
    # What a worker imports is its fixed cost: transformers (through mlx_lm.utils) cost ~1.8 s, scipy.stats 1.1 s.
    code = ("import sys, mlxbench\n"
            "from mlxbench.workloads import get\n"
            "from mlxbench.run.measure import measure\n"
            f"cls = get({workload!r})\n"
            f"measure(cls({{**cls.defaults(), **{params!r}}}, 0), 1, 2, isolated=True)\n"
            "print(sorted(m for m in ('transformers', 'mlx_lm.tokenizer_utils', 'mlx_lm.utils', 'torch', 'scipy.stats')"
            " if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
