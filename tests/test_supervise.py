"""What a case leaves behind when it ends: no process it started, no temporary folder, a log of bounded size.

Real runs of tests/fixtures/spawner.yaml, whose cases start `sleep 300.<marker>` in a session of their
own and by a double fork; a test finds what is left by that marker.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import psutil
import pytest

from mlxbench.cli import Stopped, _stopped_by_signals
from mlxbench.results import store
from mlxbench.run.runner import _signals_held
from mlxbench.run.supervise import LOG_HEAD_BYTES, LOG_TAIL_BYTES, run_isolated
from mlxbench.suite.schema import expand, load

ROOT = Path(__file__).resolve().parent.parent
SUITE = "tests/fixtures/spawner.yaml"


def left_behind(marker: int) -> list[psutil.Process]:
    """The running processes a case of this marker started (a zombie has ended)."""
    argument = f"300.{marker}"
    return [p for p in psutil.process_iter(["cmdline", "status"])
            if argument in (p.info["cmdline"] or ()) and p.info["status"] != psutil.STATUS_ZOMBIE]


@pytest.fixture
def marker():
    marker = random.randrange(10**9)
    yield marker
    for proc in left_behind(marker):  # what a failing test left: not for 300 s
        proc.kill()


def start_run(tmp_path: Path, marker: int, variants: list[str], sets: list[str] = ()) -> subprocess.Popen:
    """`mlxbench run` of the spawner suite, its temporary folders under tmp_path/tmp."""
    (tmp_path / "tmp").mkdir()
    command = [sys.executable, "-m", "mlxbench", "run", SUITE, "--only", *variants, "--set", f"marker={marker}",
               *sets, "--out", str(tmp_path / "out"), "--no-calibrate"]
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp_path / "tmp")},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_dir(tmp_path: Path) -> Path:
    (found,) = (tmp_path / "out").glob("spawner/*")
    return found


def test_processes_a_case_started_in_sessions_of_their_own_end_with_it_failed_or_timed_out(tmp_path, marker):
    runner = start_run(tmp_path, marker, ["spawns then fails", "spawns then sleeps"], ["timeout=5"])
    runner.communicate(timeout=120)
    assert runner.returncode == 1  # a case failed: a verdict
    records = {r.variant: r for r in store.read_records(run_dir(tmp_path))}
    assert records["spawns then fails"].status == "error"
    assert records["spawns then sleeps"].status == "timeout"
    for record in records.values():  # each had started its sleeps
        assert "spawned: sleep" in (run_dir(tmp_path) / "logs" / f"{record.case_id}.log").read_text()
    assert left_behind(marker) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_chatty_case_has_a_capped_log_and_its_last_words_are_read_from_its_end(tmp_path, marker):
    (case,) = expand(load(ROOT / SUITE, only=["chatty"], sets=[f"marker={marker}"]))  # 50 MiB, then exit 7
    tracemalloc.start()
    try:
        outcome = run_isolated(case, tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome["status"] == "error"
    assert outcome["error"]["message"] == "worker exited with status 7 without an outcome"
    assert outcome["error"]["traceback"].endswith(f"last words of case {marker}")
    log = (tmp_path / "logs" / f"{case.case_id}.log").read_bytes()
    assert LOG_HEAD_BYTES + LOG_TAIL_BYTES < len(log) < LOG_HEAD_BYTES + LOG_TAIL_BYTES + 200
    assert log.startswith(b"x" * 1023 + b"\n") and log.endswith(f"last words of case {marker}\n".encode())
    assert b"bytes of output left out here" in log
    assert peak < 16 * 2**20  # the runner held the log's tail at most, never the whole output


@pytest.mark.parametrize("signum, variants", [(signal.SIGTERM, ["ok", "spawns then sleeps"]),
                                              (signal.SIGHUP, ["spawns then sleeps"])])
def test_a_runner_stopped_mid_case_stops_all_the_case_started_and_says_so(tmp_path, marker, signum, variants):
    runner = start_run(tmp_path, marker, variants)
    try:
        deadline = time.monotonic() + 60
        while len(left_behind(marker)) < 2:  # the case is in its step, its two sleeps started
            assert runner.poll() is None and time.monotonic() < deadline, runner.communicate()
            time.sleep(0.05)
        case_processes = psutil.Process(runner.pid).children(recursive=True)
        runner.send_signal(signum)
        _, stderr = runner.communicate(timeout=30)
    finally:
        runner.kill()
        runner.wait()
    assert runner.returncode == 128 + signum
    assert stderr == f"mlxbench: stopped by {signal.Signals(signum).name}\n"
    assert left_behind(marker) == []
    assert not [p for p in case_processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert list((tmp_path / "tmp").iterdir()) == []  # no mlxbench-case-* folder
    records = run_dir(tmp_path) / store.RECORDS
    text = records.read_text() if records.exists() else ""
    assert [json.loads(line)["variant"] for line in text.splitlines()] == variants[:-1]
    assert text.endswith("\n") or not text


def test_a_stop_signal_during_a_record_write_lands_after_it_and_handlers_are_restored():
    written = []
    with pytest.raises(Stopped), _stopped_by_signals(), _signals_held():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # delivered meanwhile: held
        written.append("the whole record")
    assert written == ["the whole record"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
