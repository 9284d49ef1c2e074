"""What a metric name means: its label, unit scale, which direction is better, how to print it.

Metric names carry their unit (``*_bytes``, ``*_s``, ``*_per_s``), so most of this
follows from the name; a few figures without a unit in the name are listed.
"""

from __future__ import annotations

import math

MB = 1e6
# Other processes' share of the CPU while a case was timed, above which its timings are suspect.
BUSY_MACHINE_SHARE = 0.15

LABELS = {
    "peak_memory_bytes": "Peak Memory (MB)",
    "active_memory_bytes": "Active Memory (MB)",
    "cache_memory_bytes": "Cache Memory (MB)",
    "peak_rss_bytes": "Peak RSS (MB)",
    "step_time_s": "Step Time (s)",
    "tokens_per_s": "Tokens/s",
    "samples_per_s": "Samples/s",
    "decode_tokens_per_s": "Decode tok/s",
    "decode_tokens_per_s_total": "Decode tok/s (all sequences)",
    "prefill_tokens_per_s": "Prefill tok/s",
    "ttft_s": "TTFT (s)",
    "prefill_s": "Prefill (s)",
    "decode_s": "Decode (s)",
    "end_to_end_s": "End to End (s)",
    "model_size_bytes": "Model Size (MB)",
    "bits_per_weight": "Bits/Weight",
    "kl_divergence": "KL vs Baseline",
    "other_processes_cpu_share": "Other Processes' CPU Share",
    "top1_agreement": "Top-1 Agreement",
    "load_time_s": "Load Time (s)",
    "quantize_time_s": "Quantize Time (s)",
    "disk_size_bytes": "Disk Size (MB)",
    "quantized_disk_size_bytes": "Quantized Size (MB)",
    "peak_load_rss_bytes": "Peak Load RSS (MB)",
    "peak_load_memory_bytes": "Peak Load Memory (MB)",
    "compression_ratio": "Compression (×)",
    "gflop_per_s": "GFLOP/s",
    "flops_per_step": "GFLOP/step",
    "trainable_params": "Trainable Params",
    "total_params": "Total Params",
    "grad_norm": "Grad Norm",
    "loss": "Loss",
}
# Rates derived from one timing (amount / its median) have no samples of their own.
RATE_TIMINGS = {
    "tokens_per_s": "step_time_s",
    "samples_per_s": "step_time_s",
    "decode_tokens_per_s": "decode_s",
    "decode_tokens_per_s_total": "decode_s",
    "prefill_tokens_per_s": "prefill_s",
}
# Figures whose name has no unit suffix but whose direction is still clear.
LOWER_IS_BETTER = {"kl_divergence"}
HIGHER_IS_BETTER = {"top1_agreement", "compression_ratio"}


def busy_machine_share(figures: dict) -> float | None:
    """Other processes' CPU share while a case was timed, when high enough to make its timings suspect."""
    share = figures.get("other_processes_cpu_share") or 0
    return share if share >= BUSY_MACHINE_SHARE else None


def label(metric: str) -> str:
    """The column heading of a metric: its known label, else its name in words with the unit."""
    if metric in LABELS:
        return LABELS[metric]
    if metric.endswith("_bytes"):
        return metric[: -len("_bytes")].replace("_", " ").capitalize() + " (MB)"
    if metric.endswith("_per_s"):
        return metric[: -len("_per_s")].replace("_", " ").capitalize() + "/s"
    if metric.endswith("_s"):
        return metric[: -len("_s")].replace("_", " ").capitalize() + " (s)"
    return metric.replace("_", " ").capitalize()


def timing_behind(metric: str) -> str | None:
    """The timing a rate is derived from (any other ``*_per_s`` is taken to derive from step_time_s)."""
    return RATE_TIMINGS.get(metric) or ("step_time_s" if metric.endswith("_per_s") else None)


def direction(metric: str) -> str | None:
    """'lower' or 'higher' where one is better, None for figures that are neither (loss, counts)."""
    if metric.endswith("_per_s") or metric in HIGHER_IS_BETTER:
        return "higher"
    if metric.endswith("_s") or metric.endswith("_bytes") or metric in LOWER_IS_BETTER:
        return "lower"
    return None


def scale(metric: str) -> float:
    """What a raw figure is divided by for display (bytes → MB, FLOPs → GFLOP)."""
    if metric.endswith("_bytes"):
        return MB
    if metric == "flops_per_step":
        return 1e9
    return 1.0


def value_of(figure) -> float | None:
    """The headline number of a metric: a timing summary's median, or the scalar itself."""
    if isinstance(figure, dict):
        figure = figure.get("median")
    if isinstance(figure, bool) or not isinstance(figure, (int, float)):
        return None
    return None if math.isnan(figure) else float(figure)


def number(value: float | None, metric: str = "") -> str:
    """A display number with a sensible precision and thin-space thousands (1 000, 0.812, 3.6e-05)."""
    if value is None:
        return "—"
    if metric.endswith("_params") and float(value).is_integer():
        return f"{int(value):,}".replace(",", "\u2009")
    v = abs(value)
    if v == 0:
        text = "0"
    elif v >= 100:
        text = f"{value:,.0f}"
    elif v >= 10:
        text = f"{value:,.1f}"
    elif v >= 1:
        text = f"{value:.2f}"
    elif v >= 1e-4:
        text = f"{value:.3g}"  # 0.812, 0.0124, 0.000607: fixed notation reads at a glance
    else:
        text = f"{value:.2e}"
    return text.replace(",", "\u2009")


def display(figure, metric: str) -> str:
    """A recorded figure as shown in a table, scaled to its display unit."""
    value = value_of(figure)
    return number(None if value is None else value / scale(metric), metric)


def percent(change: float | None) -> str:
    """A relative change as a signed percentage: -40.0%, +25.0%; — when there is none."""
    if change is None or math.isnan(change):
        return "—"
    return f"{change * 100:+.1f}%" if abs(change) >= 0.0005 else "0.0%"
