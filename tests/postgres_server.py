"""A throwaway PostgreSQL server from Debian's package, in a temporary folder, reached by its Unix socket.

PostgreSQL refuses to run as root, so as root its programs run as ``nobody`` (runuser). Whatever
stops it from starting is raised as ``CannotStart`` with one line, for the test to skip with.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

USER = "mlxbench"


class CannotStart(RuntimeError):
    """No PostgreSQL here, or it would not start."""


def _bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise CannotStart("no PostgreSQL in /usr/lib/postgresql/*/bin (apt-get install postgresql; .ci/run does)")
    return Path(found[-1]).parent


def _run(argv: list[str], timeout_s: float) -> None:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "nobody", "--", *argv]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CannotStart(f"{Path(argv[0]).name}: {err}") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines() or ["no output"]
        raise CannotStart(f"{Path(argv[-1] if argv[0] == 'runuser' else argv[0]).name} failed: {last[-1]}")


@contextmanager
def postgres_url():
    """Start a server; yield its SQLAlchemy URL; stop it and remove its folder."""
    bindir = _bin()
    home = Path(tempfile.mkdtemp(prefix="mlxbench-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(home, "nobody")
        data = home / "data"
        _run([str(bindir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"], 120)
        # No TCP port: the socket in our own folder cannot clash with another server's.
        _run([str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(home / "log"),
              "-o", f"-k {home} -c listen_addresses='' -c fsync=off", "start"], 90)
        try:
            yield f"postgresql+psycopg://{USER}@/postgres?host={home}"
        finally:
            _run([str(bindir / "pg_ctl"), "-D", str(data), "-w", "-m", "immediate", "stop"], 60)
    finally:
        shutil.rmtree(home, ignore_errors=True)
