#!/usr/bin/env python3
"""Screenshot the latent explorer in a real JupyterLab, for the README: images/explorer.png.

Starts JupyterLab from the book's .venv on 127.0.0.1 (no token: localhost only, and only while
this script runs) on a throwaway copy of notebooks/explore.ipynb (so JupyterLab's autosave never
writes outputs into the real notebook), opens it in headless Chromium, runs all cells, waits for
the widgets' images, and saves the first code cell that shows the explorer, cropped.

Needs Playwright's Python package (not its browser downloads) and a system Chromium:

    python3 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    apt-get install -y chromium
    /tmp/pw/bin/python tools/screenshot_explorer.py [--out images/explorer.png]

Run it after `make checkpoints`: the notebook loads the cached models (VAEBOOK_CHECKPOINTS
is passed through to the kernel, to point it at another folder).
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def wait_for_server(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "api/status", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer on {url} within {timeout:.0f} s")


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "images" / "explorer.png"))
    ap.add_argument("--port", type=int, default=8899)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--timeout", type=float, default=300, help="seconds to wait for all cells to run")
    args = ap.parse_args()
    if not port_is_free(args.port):
        raise SystemExit(f"port {args.port} is taken; pass --port")

    work = Path(tempfile.mkdtemp(prefix="explorer-shot-"))
    root = work / "notebooks"
    root.mkdir()
    shutil.copy(ROOT / "notebooks" / "explore.ipynb", root / "explore.ipynb")
    # no "get Jupyter news?" toast over the page
    news = work / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(work / "config"), "JUPYTER_RUNTIME_DIR": str(work / "runtime")}
    log = open(work / "jupyter.log", "w")
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "jupyter"), "lab", "--no-browser", "--ServerApp.token=",
         "--ServerApp.password=", "--ServerApp.ip=127.0.0.1", f"--port={args.port}",
         f"--ServerApp.root_dir={root}", f"--LabApp.workspaces_dir={work / 'workspaces'}",
         f"--LabApp.user_settings_dir={work / 'settings'}",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0", "--allow-root"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{args.port}/"
    try:
        wait_for_server(url, server)
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                str(work / "chromium-profile"), executable_path=args.chromium, args=CHROMIUM_ARGS,
                headless=True, viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
            page = browser.pages[0] if browser.pages else browser.new_page()
            page.goto(url + "lab/tree/explore.ipynb?reset", wait_until="domcontentloaded")
            page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.context", timeout=120_000)
            # wait for the kernel, then Run -> Run All Cells
            page.wait_for_function("""() => {
                const w = window.jupyterapp.shell.currentWidget;
                const k = w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                return k && k.status === 'idle'; }""", timeout=120_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            # every code cell has run when none is queued or running and the last one has a count
            page.wait_for_function("""() => {
                const nb = window.jupyterapp.shell.currentWidget.content;
                const cells = nb.widgets.filter(c => c.model.type === 'code');
                const last = cells[cells.length - 1];
                return last.model.executionCount !== null &&
                       window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'; }""",
                                   timeout=args.timeout * 1000, polling=1000)
            tracebacks = page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
            if tracebacks.count():
                raise RuntimeError("a cell failed:\n" + tracebacks.first.inner_text()[:3000])
            # the explorer: the first code cell whose output holds widget images
            cell = page.locator(".jp-CodeCell").filter(has=page.locator("img.widget-image")).first
            cell.scroll_into_view_if_needed()
            page.wait_for_function("""(el) => [...el.querySelectorAll('img.widget-image')]
                .every(i => i.complete && i.naturalWidth > 0)""", arg=cell.element_handle(), timeout=60_000)
            page.mouse.move(0, 0)
            time.sleep(1)  # let the layout settle (fonts, slider handles)
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(work / "page.png"))
            cell.screenshot(path=str(out))
            browser.close()
        print(f"wrote {out} (full page: {work / 'page.png'}, server log: {work / 'jupyter.log'})")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
