"""What a run prints: which case is running, a line per finished case, a table at the end.

On a terminal the running line updates in place (a carriage return, nothing more);
in a CI log every line is printed once, so the log reads top to bottom.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from mlxbench.results.metrics import Metric, busy_machine_share, guess
from mlxbench.results.record import Record

TICK_S = 1.0  # how often a terminal's running line is redrawn


def clock(seconds: float | None) -> str:
    """Seconds as h:mm:ss or m:ss; '?' when unknown."""
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _declared(name: str, declared: dict[str, Metric]) -> Metric:
    return declared.get(name) or guess(name)


def headline(record: Record, names: tuple[str, ...], declared: dict[str, Metric]) -> str:
    """A finished case's headline figures in one line, or its failure."""
    if not record.ok:
        return f"{record.status.upper()}: {(record.error or {}).get('message', '')}"
    metrics = record.metrics
    parts = []
    for name in names:
        if name not in metrics:
            continue
        figure = metrics[name]
        unstable = " (unstable)" if isinstance(figure, dict) and figure.get("unstable") else ""
        metric = _declared(name, declared)
        parts.append(f"{metric.label} {metric.display(figure)}{unstable}")
    if (eq := record.equivalence) is not None:
        parts.append("equivalent to baseline" if eq["matches"] else f"DIFFERS from baseline: {', '.join(eq['mismatches'])}")
    if busy := busy_machine_share(metrics):
        parts.append(f"BUSY MACHINE: other processes took {busy:.0%} of the CPU while timing")
    if (record.leak or {}).get("leaking"):
        parts.append(f"LEAK {record.leak['slope_bytes_per_step'] / 1e6:.2f} MB/step")
    if (div := (record.memory or {}).get("divergence") or {}).get("flagged"):
        parts.append(f"PROCESS {div['gap_bytes'] / 1e6:.0f} MB BEYOND MLX'S PEAK: {div['cause']}")
    return " · ".join(parts)


class Progress:
    """Progress of one run over ``total`` cases, written to ``stream``."""

    def __init__(self, total: int, declared: dict[str, Metric], stream: TextIO | None = None):
        self.total = total
        self.declared = declared
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.done = 0
        self.durations: list[float] = []
        self.label = ""
        self.case_started = 0.0
        self.last_tick = 0.0

    def eta(self, running_s: float) -> float | None:
        """Seconds left: the mean case so far times the cases left, less what the current one has run."""
        if not self.durations:
            return None
        mean = sum(self.durations) / len(self.durations)
        return max(0.0, mean * (self.total - self.done) - running_s)

    def _running_line(self) -> str:
        now = time.monotonic()
        return (f"[{self.done + 1}/{self.total}] {self.label} … running "
                f"(elapsed {clock(now - self.started)}, ETA {clock(self.eta(now - self.case_started))})")

    def start(self, case_label: str) -> None:
        self.label = case_label
        self.case_started = self.last_tick = time.monotonic()
        line = self._running_line()
        self.stream.write(f"\r{line}\033[K" if self.tty else line + "\n")
        self.stream.flush()

    def tick(self) -> None:
        """Redraw the running line on a terminal (at most once a second); nothing in a log."""
        if self.tty and time.monotonic() - self.last_tick >= TICK_S:
            self.last_tick = time.monotonic()
            self.stream.write(f"\r{self._running_line()}\033[K")
            self.stream.flush()

    def finish(self, record: Record, names: tuple[str, ...]) -> None:
        wall_s = time.monotonic() - self.case_started  # with the worker's start-up, as the ETA needs
        self.durations.append(wall_s)
        self.done += 1
        line = (f"[{self.done}/{self.total}] {self.label}: {record.status} in {wall_s:.1f} s"
                f" · {headline(record, names, self.declared)}")
        self.stream.write(f"\r{line}\033[K\n" if self.tty else line + "\n")
        self.stream.flush()


def table(records: list[Record], names: tuple[str, ...], declared: dict[str, Metric]) -> str:
    """All cases as a plain-text table: variant, sweep point, status, headline figures, case id."""
    sweep_axes = list(dict.fromkeys(axis for r in records for axis in r.sweep))
    metrics = [_declared(n, declared) for n in names]
    header = ["variant", *sweep_axes, "status", *(m.label for m in metrics), "case id"]
    rows = [header]
    for r in records:
        rows.append([
            r.variant + (" (baseline)" if r.is_baseline else ""),
            *(str(r.sweep.get(axis, "")) for axis in sweep_axes),
            r.status,
            *(m.display(r.metrics.get(m.name)) for m in metrics),
            r.case_id,
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

