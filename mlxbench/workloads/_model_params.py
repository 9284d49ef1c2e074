"""Parameters shared by the workloads that build a model: which model, and its quantization."""

from __future__ import annotations

from mlxbench.workloads import models
from mlxbench.workloads.base import Param

LORA_KEYS = {"rank": 8, "layers": None, "scale": 20.0}  # mlx-lm's defaults; layers None: all
MODEL_PARAM = Param("model", str, "small", validate=models.check_model,
                    help=f"{models.describe_choices()} (config.json + safetensors)")

# For the workloads that quantize a whole model (generate, load); train quantizes only a frozen base.
QUANTIZATION_PARAMS = (
    Param("quantization", int, None, nullable=True, choices=models.QUANT_BITS,
          help="null: the model as built; bits: quantize its weights with MLX's affine quantization"),
    Param("group_size", int, 64, choices=models.QUANT_GROUP_SIZES,
          help="weights sharing one scale and bias when quantized"),
)


def quantization_errors(model: str, bits: int | None, group_size: int) -> list[tuple[str, str]]:
    """(key, message) pairs for a ``quantization``/``group_size`` pair ``model`` cannot take."""
    if bits is None or (problem := models.quantization_problem(model, bits, group_size)) is None:
        return []
    field, message = problem
    if field == "model":
        return [("quantization", message)]
    return [("quantization" if field == "bits" else field, message)]
