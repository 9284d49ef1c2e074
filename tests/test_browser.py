"""The browser helper itself: a Chromium that hangs must cost seconds, not the whole CI run, and the
checks must really fire on a page that errs or reaches for the network."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")

from browser import CHROMIUM, BrowserTimeout, browse

needs_chromium = pytest.mark.skipif(CHROMIUM is None,
                                    reason="chromium is not installed (apt-get install chromium; CI has it)")


def _fake_chromium(tmp_path, script: str) -> str:
    fake = tmp_path / "fake-chromium"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(0o755)
    return str(fake)


@pytest.mark.timeout(60)
def test_a_browser_that_never_answers_is_given_up_on_at_the_deadline(tmp_path):
    # Starts, keeps the DevTools pipe open in a child of its own, and never says a word.
    silent = _fake_chromium(tmp_path, "echo 'pretending to start' >&2\nsleep 300 &\nsleep 300\n")
    started = time.monotonic()
    with pytest.raises(BrowserTimeout, match="pretending to start"):
        browse("about:blank", tmp_path / "profile", timeout_s=2, chromium=silent)
    assert time.monotonic() - started < 15


@pytest.mark.timeout(60)
def test_a_browser_that_exits_at_once_is_reported_with_what_it_printed(tmp_path):
    broken = _fake_chromium(tmp_path, "echo 'no usable sandbox' >&2\nexit 1\n")
    with pytest.raises(BrowserTimeout, match="no usable sandbox"):
        browse("about:blank", tmp_path / "profile", timeout_s=10, chromium=broken)


def _page(tmp_path, body: str) -> str:
    page = tmp_path / "page.html"
    page.write_text(f"<!doctype html><title>t</title>{body}")
    return page.as_uri()


@needs_chromium
@pytest.mark.timeout(120)
def test_a_plain_page_has_no_errors_and_requests_only_itself(tmp_path):
    url = _page(tmp_path, "<p>ok</p>")
    assert browse(url, tmp_path / "profile") == ([], [url])


@needs_chromium
@pytest.mark.timeout(120)
def test_console_errors_and_uncaught_exceptions_are_caught(tmp_path):
    url = _page(tmp_path, '<script>console.error("x")</script><script>throw new Error("boom")</script>')
    errors, _ = browse(url, tmp_path / "profile")
    assert any("x" in e for e in errors) and any("boom" in e for e in errors), errors


@needs_chromium
@pytest.mark.timeout(120)
def test_requests_to_unreachable_hosts_are_listed_even_from_css(tmp_path):
    # Port 9 is refused at once; 10.255.255.1 is a blackhole. Neither may pass unnoticed.
    url = _page(tmp_path, "<style>@font-face { font-family: f; src: url(http://127.0.0.1:9/f.woff2) }"
                          "p { font-family: f }</style><p>text</p><img src='http://10.255.255.1/x.png'>")
    errors, requests = browse(url, tmp_path / "profile")
    assert requests[0] == url
    assert {"http://127.0.0.1:9/f.woff2", "http://10.255.255.1/x.png"} <= set(requests), requests
    assert any("127.0.0.1:9" in e for e in errors), errors
