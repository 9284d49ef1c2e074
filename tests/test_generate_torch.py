"""generate with framework: torch — the same tiny model in PyTorch: same weights (KL ≈ 0), the check
that fires when the weights differ, the refused combinations, the one-line error without PyTorch,
and the MLX/PyTorch ratio table of a real run. One PyTorch worker process in all (torch's import is slow)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from validation import validation_errors
from mlxbench.workloads import models
from mlxbench.workloads.generate import Generate
from mlxbench.workloads import _generate_torch as gt
from mlxbench.workloads._generation_plan import prompt_token_ids

ROOT = Path(__file__).resolve().parent.parent
torch = pytest.importorskip("torch", reason="mlxbench[torch] not installed")
pytestmark = pytest.mark.torch  # `make test` runs it in .venv-torch


def params(**overrides) -> dict:
    return {**Generate.defaults(), "model": "tiny", "prompt_tokens": 12, "generation_tokens": 6,
            "framework": "torch", **overrides}


def test_the_same_weights_give_the_same_distributions_and_the_speeds_are_measured():
    from mlxbench.run import measure as loop

    assert Generate.implementation(params()) is gt.TorchGenerate
    wl = gt.TorchGenerate(params(batch_size=2), seed=0)
    figures = loop.measure(wl, warmup=0, repeat=2).metrics
    assert figures["kl_vs_mlx"] < 1e-6  # float32: rounding only
    assert figures["top1_vs_mlx"] == 1.0
    assert figures["prefill_tokens_per_s"] > 0 and figures["decode_tokens_per_s"] > 0
    assert figures["decode_tokens_per_s_total"] == pytest.approx(2 * figures["decode_tokens_per_s"])
    # MLX's counters do not see PyTorch's work: blank. On the CPU PyTorch keeps no memory counter:
    # its own figure is null, with the reason; the process footprint always.
    assert "peak_memory_bytes" not in figures and "active_memory_bytes" not in figures
    assert figures["torch_peak_memory_bytes"] is None and "none" in figures["torch_memory_counter"]
    assert figures["peak_rss_bytes"] > 0
    assert figures["torch_device"] == "cpu" and figures["torch_threads"] == gt.mlx_threads()
    assert figures["torch_blas"]


def test_different_weights_are_caught():
    mlx_net, config = models.build("tiny", seed=0)
    other, _ = models.build("tiny", seed=1)
    prompt = prompt_token_ids(config["vocab_size"], 1, 12, seed=0)[0]
    reference = gt.mlx_logprobs(mlx_net, prompt)
    same = gt.torch_model("tiny", config, mlx_net, "float32", "cpu")
    different = gt.torch_model("tiny", config, other, "float32", "cpu")
    assert gt.kl_divergence(reference, gt.torch_logprobs(same, prompt, "cpu"))[0] < 1e-6
    assert gt.kl_divergence(reference, gt.torch_logprobs(different, prompt, "cpu"))[0] > 10 * gt.KL_TOLERANCE


@pytest.mark.parametrize("overrides, key", [
    ({"quantization": 4}, "quantization"),
    ({"kv_bits": 8}, "kv_bits"),
    ({"framework": "mlx", "device": "cpu"}, "device"),
    ({"device": "cuda"}, "device"),
    ({"depth": 256}, "depth"),
    ({"test": "tg"}, "test"),
    ({"prompt_cache": "hit", "depth": 256}, "prompt_cache"),
    ({"clear_cache_threshold": 0}, "clear_cache_threshold"),
])
def test_what_pytorch_cannot_do_is_refused(overrides, key):
    if overrides.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    found = validation_errors(Generate, params(**overrides))
    assert key in found and found[key].startswith("expected"), found


def _suite(tmp_path: Path, repeat: int = 1) -> Path:
    path = tmp_path / "vs.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: vs
        workload: generate
        baseline: MLX
        warmup: 0
        repeat: {repeat}
        defaults: {{model: tiny, prompt_tokens: 12, generation_tokens: 4}}
        variants:
          MLX: {{}}
          PyTorch: {{framework: torch}}
        """))
    return path


def test_without_pytorch_the_suite_is_refused_in_one_line(tmp_path):
    fake = tmp_path / "no-torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named torch')\n")
    env = {"PYTHONPATH": f"{fake.parent}:{ROOT}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "mlxbench", "run", str(_suite(tmp_path)),
                           "--out", str(tmp_path / "results")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "mlxbench[torch]" in lines[0] and "framework" in lines[0], done.stderr
    assert not (tmp_path / "results").exists()  # refused before any case ran


def test_a_run_of_both_frameworks_reports_their_ratio(tmp_path):
    from mlxbench.report import frameworks
    from mlxbench.results.run import load_run

    done = subprocess.run([sys.executable, "-m", "mlxbench", "run", str(_suite(tmp_path, repeat=2)),
                           "--out", str(tmp_path / "results"), "--report"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = next((tmp_path / "results" / "vs").iterdir())
    [section] = frameworks.sections(load_run(run_dir))  # declared by generate, carried in the run's suite.yaml
    [row] = section["rows"]
    assert (row["subject"], row["reference"]) == ("MLX", "PyTorch")
    labels = [c["label"] for c in row["rates"]]
    assert any("Prefill" in label for label in labels) and any("Decode" in label for label in labels)
    assert all(c["ratio"].endswith("×") for c in row["rates"])
    assert "KL vs MLX" in row["checks"]
    [report] = [line.split(":", 1)[1].strip() for line in done.stdout.splitlines() if line.startswith("report:")]
    page = (tmp_path / report).read_text()
    assert "MLX against PyTorch" in page and "5–10×" in page
