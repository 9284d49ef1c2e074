"""A real git repository of a user's workload whose work changes at known commits (for history and bisect tests)."""

from __future__ import annotations

import subprocess
from pathlib import Path

# Besides its wall time, the step reports its work's CPU time over that of a fixed reference sum beside it
# in the same step: on a machine shared with other jobs (CI, these 2-core VMs) both wall and CPU time
# drift twofold within a minute (a busy hyperthread sibling slows this one), and the ratio cancels
# that drift, so the tests check the search rather than the neighbours.
WORKLOAD = '''"""A user's workload: a pure-Python sum (one core, ~10 ms) and an MLX buffer."""
import time

import mlx.core as mx

from mlxbench.results.metrics import Metric
from mlxbench.workloads.base import Workload

SUM_TERMS = {terms}
REFERENCE_TERMS = 200_000
BUFFER_ELEMENTS = {elements}


class Spin(Workload):
    name = "spin"
    declares = (Metric("work_per_reference", "Work / Reference", "", "lower", "timing", True),)

    def step(self):
        work = reference = 0.0
        for _ in range(4):  # alternating quarters: a neighbour that comes or goes slows both alike
            start = time.thread_time()
            sum(range(SUM_TERMS // 4))
            middle = time.thread_time()
            sum(range(REFERENCE_TERMS // 4))
            work, reference = work + middle - start, reference + time.thread_time() - middle
        mx.eval(mx.ones((BUFFER_ELEMENTS,)) * 2)
        return {{"work_per_reference": work / reference}}
'''
TERMS, ELEMENTS = 300_000, 1_000_000


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin", "HOME": str(repo)}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def make_repo(repo: Path, commits: int = 16, slower_at: int | None = None, hungrier_at: int | None = None,
              ) -> list[str]:
    """``commits`` commits (ids oldest first); from ``slower_at`` on the step sums 30% more terms,
    from ``hungrier_at`` on its MLX buffer is 50% larger."""
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    shas = []
    for i in range(commits):
        terms = int(TERMS * 1.3) if slower_at is not None and i >= slower_at else TERMS
        elements = int(ELEMENTS * 1.5) if hungrier_at is not None and i >= hungrier_at else ELEMENTS
        (repo / "userwl.py").write_text(WORKLOAD.format(terms=terms, elements=elements))
        (repo / "CHANGES").write_text(f"change {i}\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"change {i}")
        shas.append(_git(repo, "rev-parse", "HEAD"))
    return shas
