"""The report: tables, charts and pages rendered from recorded runs."""

from __future__ import annotations

from html.parser import HTMLParser

from mlxbench.report import html as report_html


class _Page(HTMLParser):
    """The parts of a page the tests look at: tags with their attributes, and the text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if data.strip():
            self.text.append(data.strip())


def _profile() -> dict:
    t = [i * 0.01 for i in range(50)]
    return {
        "timeline": {"t": t, "active": [1e6 * (1 + i) for i in range(50)], "cache": [0] * 50,
                     "peak": [1e6 * (1 + i) for i in range(50)], "rss": [2e8] * 50,
                     "phases": [{"name": "setup", "start": 0.0}, {"name": "step", "start": 0.2}]},
        "peak_bytes": 50_000_000, "peak_rss_bytes": 200_000_000, "env": {},
        "script": "train.py", "command": "mlxbench profile train.py",
    }


def test_profile_page_has_an_inline_svg_timeline_and_a_row_per_phase():
    page = _Page(report_html.render_profile(_profile()))
    assert ("svg", ) == tuple(t for t, _ in page.tags if t == "svg")
    assert "setup" in page.text and "step" in page.text
    assert "50.0" in " ".join(page.text)  # the peak, in MB
