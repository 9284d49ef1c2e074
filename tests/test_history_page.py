"""The history page: a chart per metric with a point per version and the steps marked, links to each
run, machines side by side; it opens in real headless Chromium without errors or network."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from history_runs import VERSIONS, history_run

from mlxbench.history.steps import detect
from mlxbench.report.history import render_history
from mlxbench.results.db import connect
from mlxbench.results.machines import machine_rows
from mlxbench.results.metrics import Metric

METRICS = ("step_time_s", "peak_memory_bytes")


@pytest.fixture
def history(tmp_path):
    """A database of the sample suite at three MLX versions (30% slower at the last) on two machines."""
    with connect(f"sqlite:///{tmp_path / 'h.db'}") as db:
        for version in VERSIONS:
            db.import_run(history_run(tmp_path / "runs", version, scale=1.3 if version == VERSIONS[-1] else 1.0))
        db.import_run(history_run(tmp_path / "runs", VERSIONS[-1], hostname="studio", chip="Apple M2 Ultra",
                                  scale=0.5))
        declared = {name: Metric.from_dict(d) for name, d in db.declarations("training-memory").items()}
        series = {name: db.series("training-memory", name) for name in METRICS}
        steps = {name: detect(series[name], declared[name]) for name in METRICS}
        machines, case = machine_rows(db, "training-memory")
    return series, steps, declared, machines, case


@pytest.fixture
def page(history, tmp_path):
    series, steps, declared, machines, case = history
    return render_history("training-memory", series, steps, tmp_path / "history.html", declarations=declared,
                          machines=machines, machines_case=case)


def test_each_metric_has_a_chart_with_a_point_per_version(page):
    html = page.read_text()
    for name in METRICS:
        section = html.split(f'id="metric-{name}"')[1].split("</section>")[0]
        svg = section.split("<svg")[1].split("</svg>")[0]
        assert all(f"mlx {v} · mlx-lm 0.28.0" in svg for v in VERSIONS), name


def test_the_step_is_marked_and_confirmed_on_the_page(history, page):
    series, steps, *_ = history
    assert [s.verdict for s in steps["step_time_s"]] == ["slower", "slower"]  # both variants, laptop only
    html = page.read_text()
    section = html.split('id="metric-step_time_s"')[1].split("</section>")[0]
    assert "slower +3" in section and "mlx 0.30.6 · mlx-lm 0.28.0 → mlx 0.32.4 · mlx-lm 0.28.0" in section
    assert "2 confirmed steps" in html


def test_every_point_links_to_its_run(page, tmp_path):
    hrefs = re.findall(r'<a href="([^"#]+)">', page.read_text())
    assert hrefs and all((page.parent / h).exists() for h in hrefs)
    assert "runs/laptop-0.29.4-0" in hrefs


def test_machines_side_by_side_with_the_llama_cpp_columns(history, page):
    *_, machines, case = history
    assert case == "baseline · seq_length = 256"
    by_name = {m["machine"]: m for m in machines}
    assert by_name["studio"]["chip"] == "Apple M2 Ultra" and by_name["laptop"]["cores"] == 12
    assert by_name["studio"]["step_time_s"] == pytest.approx(0.5, rel=0.05)
    assert by_name["laptop"]["pp512"] is None  # a training suite has no pp512: not measured, not guessed
    html = page.read_text()
    assert all(h in html for h in ("Chip", "Cores", "Read bandwidth (GB/s)", "pp512 (t/s)", "tg128 (t/s)"))


def test_the_page_opens_in_chromium_without_errors_or_network(page, tmp_path):
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    from browser import CHROMIUM, BrowserTimeout, browse, screenshot

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; CI has it)")
    try:
        errors, requests = browse(page.as_uri(), tmp_path / "profile")
    except BrowserTimeout as err:
        pytest.skip(f"chromium cannot load a page here: {err}")
    assert errors == [] and requests == [page.as_uri()]
    png = screenshot(page.as_uri(), tmp_path / "history.png")
    assert png.stat().st_size > 20_000


def _mlxbench(*argv: str):
    return subprocess.run([sys.executable, "-m", "mlxbench", *argv], capture_output=True, text=True, timeout=120)


def test_db_page_draws_the_history_of_imported_runs_from_two_machines(tmp_path):
    for version in VERSIONS:
        history_run(tmp_path / "results", version, scale=1.3 if version == VERSIONS[-1] else 1.0)
    history_run(tmp_path / "results", VERSIONS[0], hostname="studio", chip="Apple M2 Ultra")
    url, out = f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "page.html"
    assert _mlxbench("db", "import", str(tmp_path / "results"), "--db", url).returncode == 0
    done = _mlxbench("db", "page", "training-memory", "--db", url, "--out", str(out))
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert 'id="metric-step_time_s"' in html and 'id="metric-peak_memory_bytes"' in html
    assert "Apple M2 Ultra" in html and "2 confirmed steps" in html


def test_db_page_of_an_unknown_suite_or_metric_is_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    _mlxbench("db", "import", str(history_run(tmp_path, VERSIONS[0])), "--db", url)
    for argv, said in ((("nope",), "nope: expected a suite the database holds (training-memory)"),
                       (("training-memory", "--metric", "colour"), "--metric colour: expected a figure")):
        done = _mlxbench("db", "page", *argv, "--db", url)
        assert done.returncode == 2 and said in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_history_of_one_point_says_it_cannot_tell(tmp_path):
    with connect(f"sqlite:///{tmp_path / 'one.db'}") as db:
        db.import_run(history_run(tmp_path, VERSIONS[0]))
        series = {"step_time_s": db.series("training-memory", "step_time_s")}
    out = render_history("training-memory", series, {"step_time_s": detect(series["step_time_s"])},
                         tmp_path / "one.html")
    html = out.read_text()
    assert "Cannot tell whether it stepped: no series has more than 1 point yet." in html
    assert "No step found" not in html and f"At mlx {VERSIONS[0]} · mlx-lm 0.28.0 only." in html
