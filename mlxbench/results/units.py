"""mlxbench's one unit policy for memory: decimal MB = 10⁶ bytes and GB = 10⁹ bytes, everywhere
(as mlx-lm prints "Peak mem … GB"): every label says MB or GB, every ``*_mb`` setting (a suite's
``memory_limit_mb``, ``swap_limit_mb``, ``mlx_*_limit_mb``) is read as 10⁶ bytes, and every table,
chart and message formats bytes through :func:`mb` or :func:`size`.
"""

from __future__ import annotations

MB = 10**6
GB = 10**9


def mb_to_bytes(megabytes: float) -> int:
    """A ``*_mb`` setting in bytes: MB × 10⁶."""
    return int(megabytes * MB)


def mb(value: float | None, digits: int = 1) -> str:
    """Bytes as MB with ``digits`` decimals and thin-space thousands (1 234.5); — when unknown."""
    if value is None:
        return "—"
    return f"{value / MB:,.{digits}f}".replace(",", "\u2009")


def size(value: float) -> str:
    """Bytes for a message: GB with one decimal from 1 GB, else whole MB (3.2 GB, 512 MB)."""
    return f"{value / GB:.1f} GB" if abs(value) >= GB else f"{value / MB:.0f} MB"
