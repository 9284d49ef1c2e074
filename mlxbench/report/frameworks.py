"""MLX against PyTorch: each configuration's speed ratio, next to a guide's claimed 5–10×.

Keyed off the run's parameters and declarations, not a workload: a run whose cases set
``framework`` to both "mlx" and "torch" gets the table. Each MLX case is paired with the
PyTorch case whose parameters agree except ``framework``, ``device`` and those the PyTorch
case leaves null (an MLX 4-bit model against PyTorch's unquantized one of the same dtype).
The ratios are of every declared rate that is a table column: MLX / PyTorch, above 1 when
MLX is faster. The PyTorch case's quality figures (its KL against MLX) say whether the two
ran the same model.
"""

from __future__ import annotations

from mlxbench.results import metrics as m
from mlxbench.results.record import latest_by_case

PARAM, MLX, TORCH = "framework", "mlx", "torch"
IGNORED = {PARAM, "device"}
CLAIM = (5.0, 10.0)
CLAIM_TEXT = ("a guide's claim: MLX generates 5–10× faster than PyTorch on Apple silicon "
              "(1–2 tok/s against 0.2 tok/s on PyTorch MPS, 7B model)")


def _same_model(mlx, torch) -> bool:
    keys = (set(mlx.params) | set(torch.params)) - IGNORED
    return mlx.sweep == torch.sweep and all(
        torch.params.get(k) is None or mlx.params.get(k) == torch.params.get(k) for k in keys)


def _verdict(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    low, high = CLAIM
    return "within the claim" if low <= ratio <= high else ("below the claim" if ratio < low else "above the claim")


def _round_range(mlx, torch, name: str) -> str:
    """'1.10–1.31× over 3 rounds': the ratio in each interleaved round (results.rounds), or '' without rounds."""
    a, b = (((r.rounds or {}).get("values") or {}).get(name) for r in (mlx, torch))
    if not a or not b or len(a) != len(b) or not all(b):
        return ""
    ratios = [x / y for x, y in zip(a, b)]
    return f"{min(ratios):.2f}–{max(ratios):.2f}× over {len(ratios)} rounds"


def ratio_rows(run) -> list[dict]:
    """One row per MLX case with a PyTorch twin: each rate of both, their ratio, the claim's verdict."""
    records = [r for r in latest_by_case(run.records) if r.ok and PARAM in r.params]
    torch_cases = [r for r in records if r.params[PARAM] == TORCH]
    rates = [d for d in run.metrics.values() if d.kind == "rate" and d.column]
    quality = [d for d in run.metrics.values() if d.kind == "quality"]
    rows = []
    for mlx in (r for r in records if r.params[PARAM] == MLX):
        twin = next((t for t in torch_cases if _same_model(mlx, t)), None)
        if twin is None:
            continue
        cells = []
        for d in rates:
            a, b = m.value_of(mlx.metrics.get(d.name)), m.value_of(twin.metrics.get(d.name))
            ratio = a / b if a is not None and b else None
            cells.append({"label": d.label, "mlx": d.display(a), "torch": d.display(b),
                          "ratio": "—" if ratio is None else f"{ratio:.2f}×", "verdict": _verdict(ratio),
                          "rounds": _round_range(mlx, twin, d.name)})
        checks = [f"{d.label} {d.display(twin.metrics.get(d.name))}" for d in quality
                  if m.value_of(twin.metrics.get(d.name)) is not None]
        rows.append({"mlx": mlx.variant, "torch": twin.variant, "point": mlx.point, "rates": cells,
                     "checks": "; ".join(checks)})
    return rows
