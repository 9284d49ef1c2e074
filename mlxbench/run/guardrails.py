"""Guardrails: stop a case before it takes the machine down, watched by the runner while the case runs.

A suite's ``swap_limit_mb`` stops a case during which the machine's swap grew by more than that;
its ``pressure_limit`` ('warn' or 'critical') stops one during which memory pressure reached that
level. The case is recorded as ``oom`` with the reason in words and what the worker held at that
moment; the sweep goes on. Defaults: 1 GB of swap and 'critical' on macOS, none elsewhere.

Pressure levels: macOS's kernel level (kern.memorystatus_vm_pressure_level: warn, critical).
Linux has no levels, only PSI (/proc/pressure/memory); here 'warn' is some task stalled on memory
for PSI_WARN_SOME_PCT of the last 10 s, and 'critical' every task stalled at once for
PSI_CRITICAL_FULL_PCT of it (the kernel's sign of thrashing).
"""

from __future__ import annotations

import sys
from pathlib import Path

from mlxbench.machine import os_memory
from mlxbench.results import units
from mlxbench.suite.case import Case

PSI_WARN_SOME_PCT = 10.0
PSI_CRITICAL_FULL_PCT = 10.0
MACOS_LEVELS = {"warn": 2, "critical": 4}
_warned: set[str] = set()  # what this runner already said it cannot watch


def level_reached(reading: dict, limit: str) -> bool:
    """Whether an OS reading's memory pressure is at ``limit`` ('warn' or 'critical') or beyond."""
    if os_memory.MACOS:
        return reading.get("pressure", 0) >= MACOS_LEVELS[limit]
    full, some = reading.get("pressure_full", 0), reading.get("pressure", 0)
    return full >= PSI_CRITICAL_FULL_PCT or (limit == "warn" and some >= PSI_WARN_SOME_PCT)


class Guard:
    """The guardrails of one case, checked every poll of the runner's watch loop."""

    def __init__(self, case: Case, worker_pid: int):
        self.swap_limit_mb, self.pressure_limit = case.swap_limit_mb, case.pressure_limit
        self.active = self.swap_limit_mb is not None or self.pressure_limit is not None
        self.system = os_memory.Reader()
        self.worker = os_memory.Reader(worker_pid)
        reading = self.system.read() if self.active else {}
        self.swap_before = reading.get("swap_used_bytes")
        if self.active:
            self._say_what_cannot_be_watched(reading)

    def _say_what_cannot_be_watched(self, reading: dict) -> None:
        """A limit this machine gives no figure for cannot stop anything: say so, once per runner."""
        reasons = os_memory.unavailable()
        blind = []
        if self.swap_limit_mb is not None and "swap_used_bytes" not in reading:
            blind.append(f"swap_limit_mb ({reasons.get('swap_used_bytes', 'no swap figure')})")
        if self.pressure_limit is not None and "pressure" not in reading:
            blind.append(f"pressure_limit ({reasons.get('pressure', 'no pressure figure')})")
        for what in blind:
            if what not in _warned:
                _warned.add(what)
                print(f"mlxbench: {what}: this guardrail cannot be watched on this machine", file=sys.stderr)

    def check(self) -> tuple[str, str] | None:
        """('oom', why) when a limit is passed, else None."""
        if not self.active:
            return None
        reading = self.system.read()
        swap_now = reading.get("swap_used_bytes")
        if self.swap_limit_mb is not None and swap_now is not None and self.swap_before is not None:
            growth = swap_now - self.swap_before
            if growth > units.mb_to_bytes(self.swap_limit_mb):
                return "oom", (f"swap grew by {units.size(growth)} while the case ran, past swap_limit_mb "
                               f"{self.swap_limit_mb}; stopped{self._held()}")
        if self.pressure_limit is not None and level_reached(reading, self.pressure_limit):
            return "oom", (f"memory pressure reached {self.pressure_limit} "
                           f"({os_memory.pressure_words(reading.get('pressure'))}), "
                           f"pressure_limit {self.pressure_limit}; stopped{self._held()}")
        return None

    def _held(self) -> str:
        held = self.worker.read().get("process_bytes")
        return "" if held is None else f" while the worker held {units.size(held)}"


def own_cgroup_oom_files() -> list[tuple[Path, str]]:
    """(file, key) of the OOM-kill counter of the memory cgroup this process (and so its workers) is in.

    cgroup v1 counts kills per cgroup, not up the hierarchy: a runner started in a memory-limited
    cgroup must read its own cgroup's counter to tell an OOM kill from another SIGKILL.
    """
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    files = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            files.append((Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.oom_control", "oom_kill"))
        elif controllers == "":
            files.append((Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.events", "oom_kill"))
    return files
