"""A user's commits: resolve revisions, list a range, and a clean copy of the tree at each commit.

Each commit is exported with ``git archive`` into ``<cache>/<sha>/`` (written beside, then renamed
into place, so a copy killed half-way is never used): the user's working copy and its ``.git`` are
never touched, and a copy is made once and reused by later histories and bisects.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from mlxbench.errors import UserError


def _git(repo: Path, *args: str, binary: bool = False):
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False,
                              text=not binary)
    except FileNotFoundError:
        raise UserError("git: expected the git command on PATH, got none") from None
    if done.returncode != 0:
        err = done.stderr if isinstance(done.stderr, str) else done.stderr.decode(errors="replace")
        first = (err.strip().splitlines() or ["git failed"])[0]
        raise UserError(f"{repo}: git {' '.join(args[:2])}: {first}")
    return done.stdout


def resolve(repo: Path, rev: str, option: str) -> str:
    """The full commit id ``rev`` names in ``repo``; a UserError naming ``option`` where it names none."""
    if not (repo / ".git").exists() and not (repo / "HEAD").exists():
        raise UserError(f"{repo}: --repo: expected a git repository, got {'a folder without .git' if repo.is_dir() else 'nothing there'}")
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
    except UserError:
        raise UserError(f"{repo}: {option}: expected a commit, got {rev!r}") from None


def commits_from(repo: Path, first: str, last: str) -> list[str]:
    """``first``, then every commit after it up to ``last``, oldest first, along the first-parent line."""
    later = _git(repo, "rev-list", "--reverse", "--first-parent", "--ancestry-path", f"{first}..{last}").split()
    if first != last and not later:
        raise UserError(f"{repo}: expected {first[:12]} to be an ancestor of {last[:12]}, got no path between them")
    return [first, *later]


def subject(repo: Path, sha: str) -> str:
    """The commit's one-line message."""
    return _git(repo, "log", "-1", "--format=%s", sha).strip()


def checkout(repo: Path, sha: str, cache: Path) -> Path:
    """A clean copy of the tree at ``sha`` under ``cache`` (made once, then reused)."""
    target = cache / sha
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f".{sha}.{os.getpid()}.part"
    shutil.rmtree(partial, ignore_errors=True)
    archive = _git(repo, "archive", "--format=tar", sha, binary=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(partial, filter="data")
    try:
        os.replace(partial, target)
    except OSError:  # another process made it meanwhile
        shutil.rmtree(partial, ignore_errors=True)
    return target
