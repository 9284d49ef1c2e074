"""The browser helper itself: a Chromium that hangs must cost seconds, not the whole CI run."""

from __future__ import annotations

import time

import pytest

from browser import BrowserTimeout, browse


def test_a_browser_that_never_answers_is_given_up_on_at_the_deadline(tmp_path):
    silent = tmp_path / "silent-chromium"
    # Starts, keeps the DevTools pipe open in a child of its own, and never says a word.
    silent.write_text("#!/bin/sh\necho 'pretending to start' >&2\nsleep 300 &\nsleep 300\n")
    silent.chmod(0o755)
    started = time.monotonic()
    with pytest.raises(BrowserTimeout, match="pretending to start"):
        browse("about:blank", tmp_path / "profile", timeout_s=2, chromium=str(silent))
    assert time.monotonic() - started < 15


def test_a_browser_that_exits_at_once_is_reported_with_what_it_printed(tmp_path):
    broken = tmp_path / "broken-chromium"
    broken.write_text("#!/bin/sh\necho 'no usable sandbox' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(BrowserTimeout, match="no usable sandbox"):
        browse("about:blank", tmp_path / "profile", timeout_s=10, chromium=str(broken))
