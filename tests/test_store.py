"""The run folder on disk: records appended whole or not at all, broken lines skipped and said,
strict JSON, files replaced whole; real files, and a real full or read-only disk (a small tmpfs)."""

from __future__ import annotations

import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlxbench.errors import UserError
from mlxbench.results import store
from mlxbench.results.record import Record

PAGE = 4096  # tmpfs hands out space a page at a time


def record(case_id: str = "c1", pad: int = 0, **fields) -> Record:
    return Record(suite="s", case_id=case_id, variant="v", workload="w", params={"pad": "x" * pad}, **fields)


def strict_json(line: str):
    """``json.loads`` that refuses NaN and Infinity, as every JSON reader but Python's does."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(line, parse_constant=refuse)


@contextmanager
def small_disk(path: Path, size: str = "256k"):
    """A real tmpfs of ``size`` mounted at ``path``; skips the test where this user cannot mount one."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        pytest.skip(f"could not mount a tmpfs: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(directory: Path) -> Path:
    """Fill the disk ``directory`` is on, a page at a time, until it has no room; the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, b"\0" * PAGE)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_an_append_after_a_cut_short_line_starts_a_fresh_line(tmp_path):
    (tmp_path / store.RECORDS).write_text(record("c1").to_json() + "\n" + '{"suite": "s", "ca')
    store.append_record(tmp_path, record("c2"))
    problems = []
    assert [r.case_id for r in store.read_records(tmp_path, problems)] == ["c1", "c2"]
    (problem,) = problems
    assert problem.startswith(f"{tmp_path / store.RECORDS}:2: skipped: ")


def test_a_reader_skips_and_reports_every_line_that_is_no_record_and_keeps_the_rest(tmp_path):
    lines = [record("c1").to_json().encode(), b"[1, 2]", b'{"suite": "s"}', record("c2").to_json().encode(),
             b"\xff not utf-8", b""]
    (tmp_path / store.RECORDS).write_bytes(b"\n".join(lines))
    problems = []
    assert [r.case_id for r in store.read_records(tmp_path, problems)] == ["c1", "c2"]
    assert [p.split(":")[1] for p in problems] == ["2", "3", "5"]
    assert all(p.startswith(f"{tmp_path / store.RECORDS}:") and "skipped" in p for p in problems)


def test_records_are_strict_json_a_non_finite_figure_is_null_and_named(tmp_path):
    store.append_record(tmp_path, record(metrics={"loss": float("nan"), "rate": float("inf"), "ok": 1.5}))
    (line,) = (tmp_path / store.RECORDS).read_text().splitlines()
    data = strict_json(line)
    assert data["metrics"] == {"loss": None, "rate": None, "ok": 1.5}
    assert data["non_finite"] == ["loss", "rate"]


@pytest.mark.parametrize("cut, kept, note", [
    (1, 1, "dropped its last line (1 bytes), cut short by a crash; its case runs again"),
    (0.5, 1, "cut short by a crash; its case runs again"),
    (-1, 2, "its last record lacked its newline; added"),  # the line whole but for its newline
])
def test_a_resume_first_ends_the_records_on_a_whole_line(tmp_path, cut, kept, note):
    first, second = record("c1").to_json() + "\n", record("c2").to_json()
    at = {1: 1, 0.5: len(second) // 2, -1: len(second)}[cut]
    (tmp_path / store.RECORDS).write_text(first + second[:at])
    assert note in store.end_on_whole_line(tmp_path)
    text = (tmp_path / store.RECORDS).read_text()
    assert text.endswith("\n") and len(text.splitlines()) == kept
    assert all(strict_json(line) for line in text.splitlines())
    assert store.end_on_whole_line(tmp_path) is None  # now whole: left alone


def test_an_append_the_disk_takes_only_part_of_is_taken_back_and_said_in_one_line(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        store.append_record(disk, record("c1", pad=2500))
        before = (disk / store.RECORDS).read_bytes()
        filler = fill(disk)
        line = record("c2", pad=2500).to_json()
        assert len(before) % PAGE + len(line) > PAGE  # the page's room takes part of the line, then no more
        with pytest.raises(UserError) as failed:
            store.append_record(disk, record("c2", pad=2500))
        message = str(failed.value)
        assert message.startswith(f"{disk / store.RECORDS}: could not write: No space left on device (ENOSPC)")
        assert "\n" not in message and f"--resume {disk}" in message
        assert (disk / store.RECORDS).read_bytes() == before
        filler.unlink()
        store.append_record(disk, record("c2", pad=2500))
        assert [r.case_id for r in store.read_records(disk)] == ["c1", "c2"]


def test_writes_to_a_read_only_disk_are_one_line_and_change_nothing(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        store.append_record(disk, record("c1"))
        store.write_suite(disk, {"name": "s"})
        before = {p.name: p.read_bytes() for p in disk.iterdir()}
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        for write, name in ((lambda: store.append_record(disk, record("c2")), store.RECORDS),
                            (lambda: store.write_suite(disk, {"name": "t"}), store.SUITE),
                            (lambda: store.write_env(disk, {"env_id": "e"}), store.ENV)):
            with pytest.raises(UserError, match=rf"^{disk / name}: could not write: Read-only file system \(EROFS\)"):
                write()
        assert {p.name: p.read_bytes() for p in disk.iterdir()} == before


def test_suite_and_env_files_are_replaced_whole_or_left_as_they_were(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        store.write_suite(disk, {"name": "s", "repeat": 2})
        store.write_env(disk, {"env_id": "e1"})
        filler = fill(disk)
        for write, name in ((lambda: store.write_suite(disk, {"name": "s", "repeat": 9}), store.SUITE),
                            (lambda: store.write_env(disk, {"env_id": "e2", "pad": "x" * 9000}), store.ENV)):
            with pytest.raises(UserError, match=rf"^{disk / name}: could not write: No space left on device"):
                write()
        assert store.read_suite(disk) == {"name": "s", "repeat": 2}
        assert store.read_env(disk) == {"env_id": "e1"}
        assert sorted(p.name for p in disk.iterdir()) == sorted([store.SUITE, store.ENV, filler.name])


def test_a_run_folder_is_one_mlxbench_marked_or_one_of_the_older_three_files(tmp_path):
    marked, older, users = tmp_path / "marked", tmp_path / "older", tmp_path / "users"
    store.write_suite(marked.mkdir() or marked, {"name": "s", store.RUN_MARKER: "20261124-191502-ab12"})
    older.mkdir()
    for name in (store.RECORDS, store.SUITE, store.ENV):
        (older / name).write_text("{}\n")
    users.mkdir()
    (users / store.SUITE).write_text("name: s\nworkload: matmul\n")
    assert store.is_run_dir(marked) and store.is_run_dir(older)
    assert not store.is_run_dir(users) and not store.is_run_dir(tmp_path)
