"""``--resume``, end to end: the real CLI, real worker processes, a workload of the test's own.

A run cut at any byte of its last line, or stopped by a full disk, resumes to every case exactly
once; only a run folder mlxbench made is resumed, by one runner at a time, with the run's settings.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import suppress
from pathlib import Path

import psutil
import pytest
from test_store import PAGE, small_disk, strict_json

from mlxbench.results import store
from mlxbench.results.record import latest_by_case
from mlxbench.run.rundir import open_run_dir
from mlxbench.suite.schema import load

ROOT = Path(__file__).resolve().parent.parent

WORKLOAD = '''
import os, time
from pathlib import Path
from mlxbench.workloads.base import Param, Workload

class Nap(Workload):
    name = "nap"
    params = (Param("nap_s", float, 0.0, minimum=0), Param("pad", str, ""), Param("fill", str, ""))

    def step(self):
        time.sleep(self.p["nap_s"])
        done = Path(self.p["fill"] + ".done")
        if self.p["fill"] and not done.exists():  # fill the disk, once
            fd = os.open(self.p["fill"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                while True:
                    os.write(fd, bytes(4096))
            except OSError:
                pass
            os.close(fd)
            done.touch()
'''


def write_suite(directory: Path, variants: dict, **fields) -> Path:
    """A suite of ``nap:Nap`` cases in ``directory``, with the workload's module beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "nap.py").write_text(WORKLOAD)
    suite = {"name": "naps", "workload": "nap:Nap", "warmup": 0, "repeat": 2, "timeout": 120,
             "variants": variants, **fields}
    path = directory / "suite.yaml"
    path.write_text(json.dumps(suite))  # JSON is YAML
    return path


def mlxbench(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlxbench", *args], cwd=cwd, capture_output=True, check=False,
                          text=True, timeout=300)


def run(suite: Path, *args: str, status: int | None = 0, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    done = mlxbench("run", str(suite), "--no-calibrate", *args, cwd=cwd)
    if status is not None:
        assert done.returncode == status, done.stdout + done.stderr
    return done


def each_case_once_and_ok(run_dir: Path, cases: int) -> None:
    """Every line of records.jsonl is strict JSON, and each case has exactly one record, ok."""
    text = (run_dir / store.RECORDS).read_text()
    assert text.endswith("\n")
    assert all(strict_json(line) for line in text.splitlines())
    problems = []
    records = store.read_records(run_dir, problems)
    assert problems == []
    assert len(Counter(r.case_id for r in records)) == cases
    assert set(Counter(r.case_id for r in records).values()) == {1}
    assert all(r.ok for r in latest_by_case(records))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run of two fast cases: (suite file, run folder)."""
    home = tmp_path_factory.mktemp("finished")
    suite = write_suite(home, {"a": {}, "b": {"pad": "b"}})
    run(suite, "--out", str(home / "results"))
    (run_dir,) = (home / "results" / "naps").iterdir()
    return suite, run_dir


def holder(run_dir: Path) -> dict:
    """What the runner that holds the run wrote in its lock file, or {}."""
    try:
        return json.loads((run_dir / "runner.lock").read_text())
    except (OSError, ValueError):
        return {}


def copy_of(run_dir: Path, where: Path) -> Path:
    return Path(shutil.copytree(run_dir, where / "naps" / run_dir.name))


@pytest.mark.parametrize("cut", ["byte 1", "middle", "all but its newline"])
def test_a_run_cut_short_in_its_last_line_resumes_to_each_case_once(finished, tmp_path, cut):
    suite, run_dir = finished
    run_dir = copy_of(run_dir, tmp_path)
    data = (run_dir / store.RECORDS).read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    last = len(data) - start
    keep = {"byte 1": 1, "middle": last // 2, "all but its newline": last - 1}[cut]
    (run_dir / store.RECORDS).write_bytes(data[:start + keep])
    done = run(suite, "--resume", str(run_dir))
    assert ("1 of 2 cases already ok" if cut != "all but its newline" else "2 of 2 cases already ok") in done.stdout
    each_case_once_and_ok(run_dir, 2)


@pytest.mark.parametrize("which", ["first", "second"])
def test_a_full_disk_stops_the_run_in_one_line_and_a_resume_completes_it(tmp_path, which):
    """The case that fills the disk runs first (its record cannot even begin) or second (the disk
    takes the part of its line the last page has room for)."""
    with small_disk(tmp_path / "disk", "1m") as disk:
        filler = disk / "filler"
        # Records of about 3 kB: the second one straddles the end of the file's first page.
        variants = {"plain": {"pad": "p" * 2500}, "fills": {"pad": "f" * 2500, "fill": str(filler)}}
        if which == "first":
            variants = dict(reversed(variants.items()))
        suite = write_suite(tmp_path / "suite", variants)
        done = run(suite, "--out", str(disk), status=2)
        (run_dir,) = (disk / "naps").iterdir()
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"mlxbench: {run_dir / store.RECORDS}: could not write: No space left on device")
        written = (run_dir / store.RECORDS).read_bytes()  # nothing of the failed record
        if which == "first":
            assert written == b""
        else:
            assert written.count(b"\n") == 1 and written.endswith(b"\n")
        filler.unlink()
        run(suite, "--resume", str(run_dir))
        each_case_once_and_ok(run_dir, 2)
        if which == "second":  # the premise: the page had room for part of the record, not all of it
            fills_line = (run_dir / store.RECORDS).read_bytes()[len(written):]
            assert 0 < len(written) % PAGE < PAGE < len(written) % PAGE + len(fills_line)


def test_a_second_runner_in_the_same_run_folder_says_who_holds_it_and_exits_2(tmp_path):
    suite = write_suite(tmp_path, {"quick": {}, "slow": {"nap_s": 60}})
    run(suite, "--out", str(tmp_path / "results"), "--only", "quick")
    (run_dir,) = (tmp_path / "results" / "naps").iterdir()
    first = subprocess.Popen([sys.executable, "-m", "mlxbench", "run", str(suite), "--no-calibrate",
                              "--resume", str(run_dir)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    try:
        deadline = time.monotonic() + 60
        while not workers and time.monotonic() < deadline:  # the first holds the run and runs its slow case
            time.sleep(0.1)
            if holder(run_dir).get("pid") == first.pid:
                workers = [p for p in psutil.Process(first.pid).children() if "mlxbench.run.worker" in p.cmdline()]
        assert workers, "the first runner started no case"
        second = run(suite, "--resume", str(run_dir), status=2)
        (line,) = second.stderr.splitlines()
        assert f"expected a run no other runner is working in, got one in use by pid {first.pid} on " in line
        first.send_signal(signal.SIGKILL)  # a crash: the kernel lets go of its lock
        first.wait()
    finally:
        for process in (first, *workers):  # its worker would stop on its own, later
            with suppress(psutil.NoSuchProcess, ProcessLookupError):
                process.kill()
        first.wait()
        psutil.wait_procs(workers, timeout=10)
    done = run(suite, "--resume", str(run_dir), "--only", "quick")
    assert "1 of 1 cases already ok" in done.stdout


def test_the_folder_of_a_suites_runs_is_no_run_folder(finished):
    suite, run_dir = finished
    records = (run_dir / store.RECORDS).read_bytes()
    done = run(suite, "--resume", str(run_dir.parent), status=2)
    assert done.stderr == (f"mlxbench: {run_dir.parent}: --resume: expected a run folder (naps/<run id>), "
                           f"got the folder of 1 run(s), the newest {run_dir}\n")
    assert not [p for p in run_dir.parent.iterdir() if p != run_dir]
    assert (run_dir / store.RECORDS).read_bytes() == records


def test_resume_here_never_overwrites_the_users_own_suite_file(tmp_path):
    suite = write_suite(tmp_path, {"a": {}})
    before = suite.read_bytes()
    done = run(suite, "--resume", ".", status=2, cwd=tmp_path)
    assert done.stderr == ("mlxbench: .: --resume: expected a run folder (naps/<run id>), "
                           "got a folder without the suite.yaml mlxbench writes for a run\n")
    assert suite.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nap.py", "suite.yaml"]


@pytest.mark.parametrize("change, message", [
    (["--set", "repeat=3"], "repeat: expected 2 (as the run was measured), got 3"),
    (["--set", "nap_s=0.5"], "defaults.nap_s: expected nothing (as the run was measured), got 0.5"),
    (["--set", "timeout=60"], "timeout: expected 120 (as the run was measured), got 60"),
])
def test_a_resume_with_other_settings_is_refused_and_the_run_left_as_it_was(finished, change, message):
    suite, run_dir = finished
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    done = run(suite, "--resume", str(run_dir), *change, status=2)
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"mlxbench: {run_dir}: --resume: {message}; start a new run")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_a_resume_may_pick_its_cases_and_name_the_suite_file_another_way(finished, tmp_path):
    suite, run_dir = finished
    run_dir = copy_of(run_dir, tmp_path)
    stored = (run_dir / store.SUITE).read_bytes()
    relative = Path("..") / suite.relative_to(suite.parent.parent)
    done = run(relative, "--resume", str(run_dir), "--only", "b", cwd=suite.parent)
    assert "1 of 1 cases already ok" in done.stdout
    assert (run_dir / store.SUITE).read_bytes() == stored


def test_a_resume_of_more_variants_widens_the_runs_only(tmp_path):
    suite = write_suite(tmp_path, {"a": {}, "b": {"pad": "b"}, "c": {"pad": "c"}})
    with open_run_dir(load(suite, only=["a"]), str(tmp_path / "results"), None) as run_dir:
        pass
    for only, widened in ((["b"], ["a", "b"]), (["a"], ["a", "b"]), ([], None)):
        with open_run_dir(load(suite, only=only), "unused", str(run_dir)):
            assert store.read_suite(run_dir)["only"] == widened


def test_a_run_from_before_the_mark_is_still_a_run_folder(finished, tmp_path):
    suite, run_dir = finished
    run_dir = copy_of(run_dir, tmp_path)
    stored = store.read_suite(run_dir)
    del stored[store.RUN_MARKER]
    store.write_suite(run_dir, stored)
    done = run(suite, "--resume", str(run_dir))
    assert "2 of 2 cases already ok" in done.stdout
