"""Load a page in a real headless Chromium over its DevTools pipe, with a hard deadline.

Every wait is bounded: a Chromium that starts but never answers (a sandbox it cannot set up, a renderer
that dies) makes ``browse`` raise ``BrowserTimeout`` with what Chromium printed, instead of hanging the
test session. The whole process tree is killed at the end, so no helper process keeps the pipe open.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--remote-debugging-pipe", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--no-default-browser-check"]


class BrowserTimeout(RuntimeError):
    """Chromium stopped answering while a page was loading."""

def _high_fd(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class _Pipe:
    """Chromium's --remote-debugging-pipe: NUL-terminated JSON, commands on its fd 3, replies on fd 4."""

    def __init__(self, to_chrome: int, from_chrome: int, deadline: float, log: Path):
        self.to_chrome, self.from_chrome, self.deadline, self.log = to_chrome, from_chrome, deadline, log
        self.buffer = b""
        self.last_id = 0

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        return self.last_id

    def messages(self, until: float | None = None):
        """Messages as they come, until ``until`` (quietly) or the overall deadline (BrowserTimeout)."""
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                yield json.loads(raw)
            stop = min(self.deadline, until) if until else self.deadline
            left = stop - time.monotonic()
            if left <= 0 or not select.select([self.from_chrome], [], [], left)[0]:
                if until and until <= self.deadline:
                    return
                raise BrowserTimeout("chromium did not answer in time")
            chunk = os.read(self.from_chrome, 65536)
            if not chunk:
                raise BrowserTimeout("chromium closed its pipe")
            self.buffer += chunk

    def reply(self, wanted: int) -> dict:
        for m in self.messages():
            if m.get("id") == wanted:
                if "error" in m:
                    raise RuntimeError(f"chromium refused command {wanted}: {m['error']}")
                return m["result"]
        raise AssertionError("unreachable")

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def browse(url: str, profile_dir: Path, timeout_s: float = 60.0,
           chromium: str | None = CHROMIUM) -> tuple[list[str], list[str]]:
    """Load ``url`` in headless Chromium: (console errors, URLs requested)."""
    profile_dir.mkdir(parents=True, exist_ok=True)
    log = profile_dir.parent / "chromium.log"
    # Pipe ends above fd 4, so moving them onto 3 and 4 in the child never overwrites one another.
    to_chrome_r, to_chrome_w, from_chrome_r, from_chrome_w = (_high_fd(fd) for fd in (*os.pipe(), *os.pipe()))

    def fds():
        os.dup2(to_chrome_r, 3)
        os.dup2(from_chrome_w, 4)

    with open(log, "wb") as log_file:
        proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
                                preexec_fn=fds, close_fds=False, start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    pipe = _Pipe(to_chrome_w, from_chrome_r, time.monotonic() + timeout_s, log)
    errors, requests = [], []
    try:
        try:
            target = pipe.reply(pipe.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        except BrokenPipeError:
            raise BrowserTimeout("chromium exited before it answered") from None
        session = pipe.reply(pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        # Each domain answers before the page loads: a load that overtakes Page.enable sends no loadEventFired.
        for method in ("Network.enable", "Runtime.enable", "Log.enable", "Page.enable"):
            pipe.reply(pipe.send(method, session=session))
        pipe.send("Page.navigate", {"url": url}, session=session)
        for m in pipe.messages():
            method, params = m.get("method"), m.get("params", {})
            if method == "Network.requestWillBeSent":
                requests.append(params["request"]["url"])
            elif method == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(str(params.get("args")))
            elif method == "Log.entryAdded":
                # A request that fails before it is sent (no such host) shows up only here.
                if params["entry"].get("source") == "network" and params["entry"].get("url"):
                    requests.append(params["entry"]["url"])
                if params["entry"].get("level") == "error":
                    errors.append(params["entry"].get("text", ""))
            elif method == "Page.loadEventFired":
                break
        # Give late requests (fonts, images named in CSS) a moment to show up.
        wanted = pipe.send("Runtime.evaluate", {"expression": "document.fonts.ready.then(() => 1)",
                                                "awaitPromise": True}, session=session)
        for m in pipe.messages(until=time.monotonic() + 1.0):
            if m.get("method") == "Network.requestWillBeSent":
                requests.append(m["params"]["request"]["url"])
            if m.get("id") == wanted:
                break
    except BrowserTimeout as err:
        raise type(err)(f"{err}; it printed: {pipe.log_tail()!r}") from None
    finally:
        try:
            pipe.send("Browser.close")
            proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:  # the renderer and zygote processes too: they hold the pipe's write end
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        os.close(to_chrome_w)
        os.close(from_chrome_r)
    return errors, requests
