"""Headless Chromium, driven over the DevTools protocol on a pipe: open a page, run JavaScript
in it, take a screenshot. Used by the browser test of the in-page explorer, by ``make bench``
(the browser's time per decode) and to screenshot the rendered book.

Why no driver library: Selenium needs a chromedriver matched to the browser and Playwright
downloads its own browsers; Chromium itself speaks the DevTools protocol (JSON messages
separated by NUL bytes) on file descriptors 3 and 4 when started with
``--remote-debugging-pipe``, so four protocol methods and the standard library are enough.

    with Chromium() as browser:
        browser.open("file:///.../chapters/05-vae.html")
        browser.evaluate("document.title")            # awaits promises, returns JSON values
        browser.screenshot("page.png")

The browser is found as $VAEBOOK_CHROMIUM, else ``chromium`` (Debian's package) or another
usual name on the PATH; :func:`find_chromium` returns None when there is none.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# headless, no sandbox (root in containers), nothing that talks to the network on its own
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-quic", "--disable-extensions", "--hide-scrollbars", "--mute-audio"]


class BrowserError(RuntimeError):
    """Chromium failed to start, a page failed to load, or the page's JavaScript threw."""


def find_chromium() -> str | None:
    """Path of a Chromium (or Chrome) executable: $VAEBOOK_CHROMIUM, else the first of NAMES
    on the PATH; None when there is none."""
    exe = os.environ.get("VAEBOOK_CHROMIUM")
    if exe:
        if not (Path(exe).is_file() and os.access(exe, os.X_OK)):
            raise BrowserError(f"VAEBOOK_CHROMIUM={exe} is not an executable file; unset it or fix the path")
        return exe
    return next((path for path in map(shutil.which, NAMES) if path), None)


class Chromium:
    """One headless Chromium with one page, for the life of a ``with`` block."""

    def __init__(self, executable: str | None = None, width: int = 1200, height: int = 900,
                 timeout: float = 60):
        exe = executable or find_chromium()
        if exe is None:
            raise BrowserError("no Chromium found: install it (Debian: apt-get install chromium) "
                               "or set VAEBOOK_CHROMIUM to its path")
        self.timeout, self._id, self._buffer, self.events = timeout, 0, b"", []
        self.profile = tempfile.mkdtemp(prefix="vaebook-chromium-")
        to_browser, self._write = os.pipe()      # Chromium reads commands on its fd 3
        self._read, from_browser = os.pipe()     # and writes answers and events on its fd 4

        def child_fds():                          # runs in the child, before exec
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser)]
            for target, fd in zip((3, 4), high):  # (a pipe may itself be fd 3 or 4)
                os.dup2(fd, target)

        self.proc = subprocess.Popen(
            [exe, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            preexec_fn=child_fds, close_fds=False,  # the pipes themselves are close-on-exec
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        try:
            target = self.send("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime"):
                self.send(f"{domain}.enable", session=True)
            self.send("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                      deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------- the protocol
    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise BrowserError(f"Chromium did not answer within {self.timeout:.0f} s")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium exited (code {self.proc.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, session: bool = False, **params):
        """Send one protocol command and return its result (events that arrive meanwhile are
        kept in ``self.events``)."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._write, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, msg in enumerate(self.events):
                if msg.get("method") == event:
                    return self.events.pop(i)
            self.events.append(self._message(deadline))

    # ------------------------------------------------------------------------------ the page
    def open(self, url: str) -> None:
        """Load `url` (file://, http://) and wait for its load event."""
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        result = self.send("Page.navigate", session=True, url=url)
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        """Run a JavaScript expression in the page; a promise is awaited; the value comes back
        as JSON (numbers, strings, lists, dicts). A thrown error becomes a BrowserError."""
        result = self.send("Runtime.evaluate", session=True, expression=expression,
                           awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript error: {text}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Uncaught exceptions and console.error messages of the page so far."""
        out = []
        for e in self.events:
            if e.get("method") == "Runtime.exceptionThrown":
                d = e["params"]["exceptionDetails"]
                out.append(d.get("exception", {}).get("description") or d.get("text", "?"))
            elif e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error":
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in e["params"]["args"]))
        return out

    def screenshot(self, path, selector: str | None = None, full_page: bool = False) -> Path:
        """Save a PNG of the viewport, of the whole page, or of the element `selector`."""
        params = {"format": "png"}
        if selector or full_page:
            box = self.evaluate(
                f"(() => {{ const el = {json.dumps(selector)} ? document.querySelector({json.dumps(selector)})"
                " : document.documentElement; if (!el) return null; const r = el.getBoundingClientRect();"
                " return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; })()")
            if box is None:
                raise BrowserError(f"no element matches {selector!r}")
            params.update(clip={**box, "scale": 1}, captureBeyondViewport=True)
        data = self.send("Page.captureScreenshot", session=True, **params)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close")
                except (BrowserError, OSError):
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for fd in (self._read, self._write):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
