"""A report as `mlxbench report` writes it, opened in real headless Chromium: no errors, no network."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")

from browser import CHROMIUM, BrowserTimeout, browse, screenshot
from sample_runs import training_records, write_run

pytestmark = [pytest.mark.skipif(CHROMIUM is None,
                                 reason="chromium is not installed (apt-get install chromium; CI has it)"),
              pytest.mark.timeout(180)]


@pytest.fixture
def report(tmp_path):
    """report.html rendered by the CLI from the sample training run."""
    run_dir = write_run(tmp_path / "run", training_records())
    out = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "mlxbench", "report", str(run_dir), "--out", str(out)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def chromium_works(tmp_path):
    control = tmp_path / "control.html"
    control.write_text("<!doctype html><title>control</title><p>ok</p>")
    try:
        assert browse(control.as_uri(), tmp_path / "control-profile") == ([], [control.as_uri()])
    except BrowserTimeout as err:  # a plain page fails too: the machine's fault, not the report's
        pytest.skip(f"chromium cannot load even a plain page here: {err}")


def test_the_report_loads_without_errors_or_network_requests(report, chromium_works, tmp_path):
    errors, requests = browse(report.as_uri(), tmp_path / "profile")
    assert errors == []
    assert requests == [report.as_uri()]


def test_the_report_can_be_screenshotted(report, chromium_works, tmp_path):
    png = screenshot(report.as_uri(), tmp_path / "report.png")
    assert png.read_bytes().startswith(b"\x89PNG")
    assert png.stat().st_size > 20_000  # a rendered report, not a blank page
