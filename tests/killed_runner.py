"""A runner killed with SIGKILL once its first record is on disk, for the tests of resuming after a kill."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil


def kill_after_first_record(args: list[str], out: Path, cwd: Path) -> tuple[Path, list[psutil.Process]]:
    """Start ``mlxbench run ARGS`` (results under ``out``), SIGKILL it once a record is written:
    (its records.jsonl, the workers it had running when it was killed)."""
    runner = subprocess.Popen([sys.executable, "-m", "mlxbench", "run", *args], cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, path = time.monotonic() + 120, None
        while time.monotonic() < deadline and path is None:
            found = list(out.glob("*/*/records.jsonl"))
            path = found[0] if found and found[0].read_text().count("\n") >= 1 else None
            time.sleep(0.05)
        assert path is not None, "no record was written in time"
        workers = psutil.Process(runner.pid).children()
        runner.send_signal(signal.SIGKILL)
    finally:
        runner.kill()
        runner.wait()
    return path, workers
