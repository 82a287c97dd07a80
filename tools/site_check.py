#!/usr/bin/env python3
"""Read the built site as a reader's browser shows it: for each page, at a desktop and a phone
width, with every collapsed block closed (the main line) and then open (callouts, folded code,
solutions), report what does not fit, and save screenshots to read.

    .venv/bin/python tools/site_check.py [_book] [--widths 1280 412] [--shots DIR] [pages...]

Per page and width it prints: whether the page scrolls sideways (it never should); the outermost
elements that run past the right edge without a scrolling box around them; the boxes that do
scroll sideways (code, tables, formulas: allowed, but counted); images shown at under half
their width (small print may be unreadable); formulas typeset and MathJax errors; and
JavaScript errors. Screenshots (one PNG per screenful, main line and all open) go to --shots.
Needs Chromium (Debian's package); see vaebook.explore.chromium.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vaebook.explore.chromium import Chromium  # noqa: E402

OPEN_ALL = """(() => {
  const main = document.querySelector('main') || document.body;
  main.querySelectorAll('details').forEach(d => d.open = true);
  main.querySelectorAll('.callout .collapse, .callout-collapse').forEach(c => c.classList.add('show'));
  return true; })()"""

MEASURE = """(() => {
  const W = document.documentElement.clientWidth;
  const main = document.querySelector('main') || document.body;
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).slice(0, 2).join('.') : '');
  const where = el => { const fig = el.closest('[id^="fig-"], [id^="tbl-"], [id^="eq-"], section[id]');
                        return fig ? fig.id : ''; };
  const scrolls = el => { const s = getComputedStyle(el).overflowX; return s === 'auto' || s === 'scroll'; };
  const clips = el => scrolls(el) || getComputedStyle(el).overflowX === 'hidden';
  const clipped = el => { for (let p = el.parentElement; p && p !== document.body; p = p.parentElement)
                            if (clips(p) && p.getBoundingClientRect().right <= W + 1) return true; return false; };
  const over = [];
  for (const el of main.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || r.right <= W + 1) continue;
    if (el.parentElement && el.parentElement.getBoundingClientRect().right > W + 1 && main.contains(el.parentElement) && el.parentElement !== main) continue;
    if (clipped(el)) continue;
    over.push(`${name(el)} in ${where(el)} by ${Math.round(r.right - W)} px`);
  }
  const scrolling = {};
  for (const el of main.querySelectorAll('*')) {
    if (el.closest('.MJX_Assistive_MathML, mjx-assistive-mml, .screen-reader-only')) continue;  // hidden, for screen readers
    if (el.scrollWidth > el.clientWidth + 2 && scrolls(el) && el.clientWidth > 0) {
      const kind = el.closest('pre, .sourceCode, .jp-InputArea, .jp-Editor') || el.querySelector('pre') ? 'code'
                 : el.querySelector('table') || el.tagName === 'TABLE' ? 'table'
                 : el.closest('.math, mjx-container, .MathJax_Display') || el.querySelector('.MathJax, mjx-container') ? 'formula'
                 : el.closest('.cell-output, .jp-OutputArea') ? 'output' : name(el);
      (scrolling[kind] = scrolling[kind] || []).push(where(el) || '?');
    }
  }
  const small = [...main.querySelectorAll('img')].filter(i => i.naturalWidth > 0 && i.getBoundingClientRect().width > 0
                 && i.getBoundingClientRect().width < 0.5 * i.naturalWidth).map(i => where(i) || (i.alt || i.src.split('/').pop()).slice(0, 40));
  return {sideways: document.scrollingElement.scrollWidth > W + 1, width: W, over: over,
          scrolling: scrolling, small: small, height: document.scrollingElement.scrollHeight,
          formulas: document.querySelectorAll('mjx-container, .MathJax, .MathJax_Display').length,
          math_errors: document.querySelectorAll('mjx-merror, .MathJax_Error, merror').length};
})()"""


def mathjax_done(browser, timeout: float = 60) -> None:
    """Wait until MathJax (2.7, as both sites use, or 3) has typeset the page."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = browser.evaluate(
            "!window.MathJax ? 'none' : MathJax.startup && MathJax.startup.promise ? "
            "MathJax.startup.promise.then(() => 'done') : MathJax.Hub && MathJax.Hub.Queue ? "
            "new Promise(r => MathJax.Hub.Queue(() => r('done'))) : 'waiting'")
        if state in ("done", "none"):
            return
        time.sleep(0.2)


def screenfuls(browser, folder: Path, stem: str, height: int, total: int, limit: int) -> int:
    """One PNG per screenful from the top (at most `limit`); how many were written."""
    count = 0
    for y in range(0, total, height):
        if count >= limit:
            break
        browser.evaluate(f"window.scrollTo(0, {y})")
        time.sleep(0.05)
        browser.screenshot(folder / f"{stem}-{count:02d}.png")
        count += 1
    return count


def check_page(page: Path, width: int, height: int, shots: Path | None, limit: int) -> list[str]:
    lines = []
    with Chromium(width=width, height=height) as browser:
        browser.open(page.resolve().as_uri())
        mathjax_done(browser)
        for state in ("main line", "all open"):
            if state == "all open":
                browser.evaluate(OPEN_ALL)
                time.sleep(0.3)
            m = browser.evaluate(MEASURE)
            scroll = ", ".join(f"{k} {len(v)}" for k, v in m["scrolling"].items()) or "none"
            lines.append(f"  {width}px {state}: {'SCROLLS SIDEWAYS, ' if m['sideways'] else ''}"
                         f"{len(m['over'])} past the edge; sideways boxes: {scroll}; "
                         f"images under half size: {len(m['small'])}; formulas {m['formulas']}, "
                         f"errors {m['math_errors']}")
            lines += [f"    past the edge: {o}" for o in m["over"][:8]]
            kinds = ("formula", "table", "output") + (("code",) if width >= 800 else ())  # code: a phone swipes it
            for kind in kinds:
                if m["scrolling"].get(kind) and state == "main line":
                    lines.append(f"    sideways {kind}s: {', '.join(sorted(set(m['scrolling'][kind])))}")
            if m["small"]:
                lines.append(f"    small images: {', '.join(m['small'][:8])}")
            if shots is not None:
                tag = "main" if state == "main line" else "open"
                n = screenfuls(browser, shots, f"{page.stem}-{width}-{tag}", height, m["height"], limit)
                lines.append(f"    {n} screenshots of {m['height'] // height + 1} screenfuls")
        errors = browser.errors()
        lines += [f"  JavaScript error: {e[:160]}" for e in errors[:5]]
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("site", nargs="?", default=str(ROOT / "_book"))
    ap.add_argument("pages", nargs="*", help="page stems (default: every chapter and the index)")
    ap.add_argument("--widths", type=int, nargs="+", default=[1280, 412])
    ap.add_argument("--shots", help="folder for screenshots (none when not given)")
    ap.add_argument("--limit", type=int, default=200, help="screenshots per page, width and state")
    args = ap.parse_args(argv)
    site = Path(args.site)
    pages = [site / "index.html", *sorted((site / "chapters").glob("*.html")), site / "references.html"]
    pages = [p for p in pages if p.exists()]
    if args.pages:
        pages = [p for p in pages if p.stem in args.pages]
    shots = Path(args.shots) if args.shots else None
    for page in pages:
        print(page.relative_to(site), flush=True)
        for width in args.widths:
            height = 900 if width >= 800 else 915
            print("\n".join(check_page(page, width, height, shots, args.limit)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
