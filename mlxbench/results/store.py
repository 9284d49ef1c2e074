"""Run results on disk: one JSON line per finished case in ``records.jsonl``, plus ``env.json``.

Layout of a run directory::

    results/<suite>/<run id>/
        suite.yaml      the resolved suite, as run
        env.json        mlxbench.machine.env.capture() of the machine
        records.jsonl   one record per finished case, appended and flushed as each finishes
        runner.lock     locked by the runner working in the folder (mlxbench.run.rundir)
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import time
from contextlib import suppress
from pathlib import Path

from mlxbench.bounded_yaml import open_regular, parse_yaml, read_text
from mlxbench.errors import UserError
from mlxbench.results.record import Record, RecordError

RECORDS = "records.jsonl"
ENV = "env.json"
SUITE = "suite.yaml"
# The key by which a suite.yaml says mlxbench wrote it for a run (its value: the run id).
RUN_MARKER = "mlxbench_run"


def append_record(run_dir: str | Path, record: Record) -> None:
    """Append one record as a single line, on disk (fsync) before returning.

    The line starts on a fresh line even when the file ends in a fragment a crash left; a write
    that fails (disk full, read-only, I/O error) is a UserError and leaves the file as it was.
    """
    path = Path(run_dir) / RECORDS
    line = (record.to_json() + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as err:
        raise _cannot_write(path, err) from None
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        try:
            _write_all(fd, line)
            os.fsync(fd)
        except BaseException as err:
            # Take back the part that made it, so the next writer appends onto a whole line.
            with suppress(OSError):
                os.ftruncate(fd, size)
            if not isinstance(err, OSError):
                raise
            raise _cannot_write(path, err, f"; the file is as it was: --resume {path.parent} "
                                            f"continues the run once that is fixed") from None
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # a nearly full disk takes part of a write, then refuses the rest
        view = view[os.write(fd, view):]


def _cannot_write(path: Path, err: OSError, then: str = "") -> UserError:
    return UserError(f"{path}: could not write: {err.strerror or err} "
                     f"({errno.errorcode.get(err.errno, err.errno)}){then}")


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def end_on_whole_line(run_dir: str | Path) -> str | None:
    """Make ``records.jsonl`` end on a whole line before a resume appends to it; what was done, or None.

    A last line a crash cut short is dropped (its case runs again); one lacking only its newline gets it.
    Lines before it are left as they are (a reader skips and reports a broken one).
    """
    path = Path(run_dir) / RECORDS
    if not path.exists() or not path.stat().st_size or _ends_with_newline(path):
        return None
    data = path.read_bytes()
    start = data.rfind(b"\n") + 1
    try:  # a line cut short is never whole JSON: an object ends in its closing brace
        json.loads(data[start:].decode("utf-8"))
        whole = True
    except (UnicodeDecodeError, json.JSONDecodeError):
        whole = False
    try:
        with open(path, "r+b") as f:
            if whole:
                f.seek(0, os.SEEK_END)
                f.write(b"\n")
            else:
                f.truncate(start)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise _cannot_write(path, err) from None
    if whole:
        return f"{path}: its last record lacked its newline; added"
    return f"{path}: dropped its last line ({len(data) - start} bytes), cut short by a crash; its case runs again"


def read_records(run_dir: str | Path, problems: list[str] | None = None) -> list[Record]:
    """Every readable record of a run, in the order written.

    A line that is no record (cut short by a kill mid-write, not JSON, another program's)
    is skipped, and said in ``problems`` when given: every other line is kept.
    """
    path = Path(run_dir) / RECORDS
    if not os.path.lexists(path):  # a symlink loop or a dangling link is not "no records"
        return []
    records = []
    with open_regular(path, "JSON lines (a run's records)") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                records.append(Record.from_dict(json.loads(raw.decode("utf-8"))))
            except (ValueError, RecursionError, RecordError, TypeError) as err:  # JSONDecodeError, bad UTF-8
                if problems is not None:
                    problems.append(f"{path}:{number}: skipped: {str(err).splitlines()[0][:120]}")
    return records


def read_env(run_dir: str | Path) -> dict:
    """The run's environment (``env.json``), or {} when it has none."""
    path = Path(run_dir) / ENV
    if not path.exists():
        return {}
    try:
        env = json.loads(_text(path, "JSON"))
    except RecursionError:
        raise UserError(f"{path}: expected UTF-8 JSON, got nesting too deep") from None
    except ValueError as err:
        raise UserError(f"{path}: expected UTF-8 JSON, got {str(err).splitlines()[0][:80]}") from None
    if not isinstance(env, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(env).__name__}")
    return env


def _text(path: Path, kind: str) -> str:
    return read_text(path, f"UTF-8 {kind}")


def new_run_id() -> str:
    """A run id that sorts by time and does not collide: ``20261124-191502-ab12``."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def write_env(run_dir: str | Path, env: dict) -> None:
    """Store the run's environment as ``env.json`` (whole or not at all)."""
    _write_whole(Path(run_dir) / ENV, json.dumps(env, indent=2) + "\n")


def write_suite(run_dir: str | Path, suite: dict) -> None:
    """Store the resolved suite, as run, as ``suite.yaml`` (whole or not at all)."""
    import yaml

    _write_whole(Path(run_dir) / SUITE, yaml.safe_dump(suite, sort_keys=False, allow_unicode=True))


def _write_whole(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file renamed over it: a failure leaves the old file (or none)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except OSError as err:
        raise _cannot_write(path, err) from None
    finally:
        with suppress(OSError):
            temporary.unlink(missing_ok=True)  # gone already once it replaced the file


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a run folder mlxbench made: its suite.yaml says so (or, from before
    that mark, it has records.jsonl, suite.yaml and env.json)."""
    path = Path(path)
    if all((path / name).is_file() for name in (RECORDS, SUITE, ENV)):
        return True
    try:
        return RUN_MARKER in read_suite(path)
    except (UserError, ValueError, OSError):
        return False


def read_suite(run_dir: str | Path) -> dict:
    """The suite as the run stored it (``suite.yaml``), or {} when it has none; UserError if unreadable."""

    path = Path(run_dir) / SUITE
    if not path.exists():
        return {}
    suite = parse_yaml(_text(path, "YAML"), str(path))[0]
    if not isinstance(suite, dict):
        raise UserError(f"{path}: expected a mapping, got {type(suite).__name__}")
    return suite
