"""One figure per column in a real mlx-vs-torch run: the MLX peak of a PyTorch case is blank (MLX's
counters do not see PyTorch's work), PyTorch's own peak is its own labelled column, and the estimate
table judges only the cases MLX ran. Real workers, the shipped suite at tiny settings."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="mlxbench[torch] not installed")

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.torch


def test_an_mlx_vs_torch_run_gives_each_framework_its_own_peak_column(tmp_path):
    from mlxbench.report import estimate, tables
    from mlxbench.results.run import load_run

    done = subprocess.run(
        [sys.executable, "-m", "mlxbench", "run", str(ROOT / "suites" / "mlx-vs-torch.yaml"), "--profile", "quick",
         "--only", "MLX float32", "PyTorch float32", "--set", "model=tiny", "prompt_tokens=12",
         "generation_tokens=6", "warmup=0", "repeat=2", "batch_size=1", "--rounds", "1", "--no-calibrate",
         "--out", str(tmp_path / "results"), "--report"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    run = load_run(next((tmp_path / "results" / "mlx-vs-torch").iterdir()))
    [table] = tables.savings_tables(run)
    labels = [c.label for c in table.columns]
    assert "Peak Memory (MB)" in labels and "PyTorch Peak Memory (MB)" in labels
    mlx_peak, torch_peak = labels.index("Peak Memory (MB)"), labels.index("PyTorch Peak Memory (MB)")
    rows = {row.variant: row for row in table.rows}
    torch_row, mlx_row = rows["PyTorch float32"], rows["MLX float32"]
    assert torch_row.ok and mlx_row.ok
    assert torch_row.cells[mlx_peak].text == "—"  # never PyTorch's number under MLX's label
    assert torch_row.cells[torch_peak].text == "—"  # on a CPU PyTorch counts no memory: not measured
    assert mlx_row.cells[mlx_peak].value > 0 and mlx_row.cells[torch_peak].text == "—"
    records = {r.variant: r for r in run.records}
    assert "peak_memory_bytes" not in records["PyTorch float32"].metrics
    assert records["PyTorch float32"].metrics["torch_peak_memory_bytes"] is None
    judged = [row["label"] for row in estimate.rows(run.records)]
    assert judged and all(label.startswith("MLX") for label in judged)
    [report] = [line.split(":", 1)[1].strip() for line in done.stdout.splitlines() if line.startswith("report:")]
    assert "PyTorch Peak Memory (MB)" in (tmp_path / report).read_text()
