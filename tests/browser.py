"""Load a page in a real headless Chromium through Playwright, with a hard deadline.

Playwright drives the system's Chromium (``executable_path``); it never downloads a browser, so
``playwright install`` is never needed. A Chromium that starts but never answers, or exits at once,
makes ``browse`` raise ``BrowserTimeout`` with what it printed, instead of hanging the test session.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
# No network here or in CI: without the background-networking flags Chromium keeps trying to phone home.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--no-default-browser-check"]
SETTLE_S = 0.5  # after load and fonts: time for late requests (images, fonts named in CSS) to show up


class BrowserTimeout(RuntimeError):
    """Chromium did not start, or stopped answering while a page was loading."""


@contextmanager
def _page(profile_dir: Path, deadline: float, chromium: str | None, width: int = 1280):
    """A page in a fresh headless Chromium with ``profile_dir`` as its profile, closed on the way out."""
    # Imported here, so test modules that import this one still load where playwright is missing.
    from playwright.sync_api import Error, sync_playwright

    if chromium is None:
        raise BrowserTimeout("no chromium found (apt-get install chromium)")
    profile_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        try:
            context = pw.chromium.launch_persistent_context(
                profile_dir, executable_path=chromium, headless=True, args=FLAGS,
                viewport={"width": width, "height": 800}, timeout=_ms_left(deadline))
        except Error as err:  # its message carries the browser's output
            raise BrowserTimeout(f"chromium did not start: {err.message}") from None
        try:
            context.set_default_timeout(_ms_left(deadline))
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def _ms_left(deadline: float) -> float:
    return max(1.0, (deadline - time.monotonic()) * 1000)


def _load(page, url: str, deadline: float) -> None:
    """Go to ``url``; wait for load, web fonts and a short settle, all within the deadline."""
    from playwright.sync_api import TimeoutError

    try:
        page.goto(url, wait_until="load", timeout=_ms_left(deadline))
        page.wait_for_function("() => document.fonts.ready.then(() => true)", timeout=_ms_left(deadline))
        page.wait_for_timeout(min(SETTLE_S * 1000, _ms_left(deadline)))
    except TimeoutError as err:
        raise BrowserTimeout(f"chromium did not load {url} in time: {err.message}") from None


def browse(url: str, profile_dir: Path, timeout_s: float = 60.0,
           chromium: str | None = CHROMIUM) -> tuple[list[str], list[str]]:
    """Load ``url`` in headless Chromium: (console errors, uncaught exceptions and failed requests;
    every URL requested, the page's own included)."""
    deadline = time.monotonic() + timeout_s
    errors: list[str] = []
    requests: list[str] = []
    with _page(profile_dir, deadline, chromium) as page:
        page.on("console", lambda m: m.type in ("error", "assert") and errors.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} ({r.failure})"))
        _load(page, url, deadline)
    return errors, requests


def screenshot(url: str, png_path: Path, width: int = 1280, full_page: bool = True,
               timeout_s: float = 60.0, chromium: str | None = CHROMIUM) -> Path:
    """Save a PNG of ``url`` as headless Chromium renders it, to look at a report by eye."""
    deadline = time.monotonic() + timeout_s
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, \
            _page(Path(profile), deadline, chromium, width) as page:
        _load(page, url, deadline)
        page.screenshot(path=str(png_path), full_page=full_page, timeout=_ms_left(deadline))
    return Path(png_path)
