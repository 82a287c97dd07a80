"""The fallback site: executed notebooks -> HTML pages laid out as Quarto lays them out.

index.html and references.html at the root, chapters/NN-name.html beside their sources, so a
page loads a site asset by the same relative URL in both builds. Each page gets the navigation
bar, previous/next links, download links and the book's style; formulas are typeset by the
MathJax 2.7 that the jupyter-server-mathjax package ships, copied into the site (as in the
Quarto build: tools/site_assets.py copies it there too), so pages work from disk and with no
network. Then the project's resources are copied and its post-render
scripts run, as `quarto render` does.
"""
from __future__ import annotations

import html
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from qmd import relative_url

MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full"
# The parts of MathJax 2.7 the pages load: TeX in, HTML-CSS out with the STIX web fonts (the
# package's fonts), the menu and zoom extensions. Checked in a browser by tests/test_site_math.py.
MATHJAX_FILES = ["MathJax.js", "LICENSE", f"config/{MATHJAX_CONFIG}.js", "config/Safe.js",
                 "extensions/Safe.js", "extensions/MathMenu.js", "extensions/MathZoom.js",
                 "extensions/HelpDialog.js", "extensions/TeX", "jax/element/mml/optable",
                 "jax/output/HTML-CSS", "fonts/HTML-CSS/STIX-Web/woff"]
# Its settings, the same in both sites: Quarto includes this file in every page's <head>
# (`include-in-header` in _quarto.yml), the fallback below.
MATHJAX_SETTINGS = Path(__file__).with_name("mathjax-config.html").read_text()

FAVICON = Path(__file__).resolve().parent.parent / "images" / "favicon.png"   # as in _quarto.yml

FALLBACK_NOTE = """::: {.callout-note}
## This is the fallback build
Quarto is not installed, so `tools/book.py` executed every chapter and exported it with
nbconvert. `quarto render` gives the full site, with its sidebar, search, cross-references
and citations; this one keeps all the content, numbered figures and links included.
:::"""


def downloads_html(links: dict[str, str], here: str) -> str:
    """'Download: notebook (.ipynb) · source (.qmd)', each a site path made relative to `here`."""
    items = " · ".join(f'<a href="{relative_url(path, here)}" download>{html.escape(text)}</a>'
                       for text, path in links.items())
    return f'<p class="downloads">Download this chapter: {items}</p>'


def page_nav(pages: list, i: int, title: str) -> tuple[str, str]:
    """The bar on top of page i, and the previous/next links under it."""
    here = pages[i].href
    top = f'<nav class="book-nav"><a href="{relative_url("index.html", here)}">{html.escape(title)}</a></nav>'
    prev = (f'<a href="{relative_url(pages[i - 1].href, here)}">← {pages[i - 1].label}</a>'
            if i > 0 else "<span></span>")
    nxt = (f'<a href="{relative_url(pages[i + 1].href, here)}">{pages[i + 1].label} →</a>'
           if i + 1 < len(pages) else "")
    return top, f'<nav class="book-pager">{prev}{nxt}</nav>'


def contents_html(pages: list, index) -> str:
    """The table of contents of the index page, in parts."""
    items = []
    for part, group in itertools.groupby(pages, key=lambda p: p.part):
        links = "".join(f'<li><a href="{relative_url(p.href, index.href)}">{p.label}</a></li>' for p in group)
        items.append(f'<li class="part">{html.escape(part)}<ul>{links}</ul></li>' if part else links)
    return '<h2 id="contents">Contents</h2>\n<ul class="book-toc">' + "".join(items) + "</ul>"


def copy_mathjax(site: Path) -> int:
    """MathJax's files into site/mathjax/ (again, over an earlier copy: both the fallback and
    the post-render step of either build call it). Returns their size in bytes."""
    import jupyter_server_mathjax
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    size = 0
    for name in MATHJAX_FILES:
        src, dst = static / name, site / "mathjax" / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        size += sum(f.stat().st_size for f in ([dst] if dst.is_file() else dst.rglob("*")) if f.is_file())
    return size


def export_page(exporter, nb, resources: dict) -> str:
    """nb as an HTML page, its raw HTML cells written as they are, between the cells' elements.
    (The lab template sanitises raw cells, which would escape the tags that open and close a
    callout around cells: tools/fallback.py's split_at_divs. Each goes through as a token.)"""
    import nbformat
    raw = [cell.source for cell in nb.cells if cell.cell_type == "raw"]
    tokens = iter(range(len(raw)))
    cells = [nbformat.from_dict({**cell, "source": f"fallback-raw-html-{next(tokens)}-"})
             if cell.cell_type == "raw" else cell for cell in nb.cells]
    body, _ = exporter.from_notebook_node(nbformat.from_dict({**nb, "cells": cells}), resources=resources)
    return re.sub(r"fallback-raw-html-(\d+)-", lambda m: raw[int(m[1])], body)


def export_site(pages: list, title: str, site: Path) -> None:
    """One HTML page per notebook, at the page's path in the site, plus style.css and MathJax."""
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(template_name="lab", exclude_input_prompt=True, exclude_output_prompt=True)
    site.mkdir(parents=True)
    shutil.copy2(Path(__file__).with_name("fallback.css"), site / "style.css")
    (site / "images").mkdir(exist_ok=True)
    shutil.copy2(FAVICON, site / "images" / FAVICON.name)    # where Quarto puts `book: favicon`
    copy_mathjax(site)
    for i, page in enumerate(pages):
        here = page.href
        exporter.mathjax_url = relative_url("mathjax/MathJax.js", here) + f"?config={MATHJAX_CONFIG},Safe"
        body = export_page(exporter, page.nb, {"metadata": {
            "name": f"{page.label} – {title}", "path": str(page.src.parent)}})
        body = body.replace(f'<script src="{exporter.require_js_url}"></script>', "", 1)  # unused, online
        top, bottom = page_nav(pages, i, title)
        head = (f'{MATHJAX_SETTINGS}<link rel="stylesheet" href="{relative_url("style.css", here)}">\n'
                f'<link rel="icon" href="{relative_url("images/" + FAVICON.name, here)}">\n</head>')
        body = body.replace("</head>", head, 1)
        body = re.sub(r"<body[^>]*>", lambda m: m[0] + top, body, count=1)
        path = site / here
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body.replace("</body>", bottom + "</body>", 1))


def copy_resources(root: Path, config: dict, site: Path) -> list[Path]:
    """Quarto's `project: resources`: files matching the globs, copied to the same paths."""
    globs = config.get("project", {}).get("resources") or []
    copied = []
    for pattern in [globs] if isinstance(globs, str) else globs:
        for src in sorted(root.glob(pattern)):
            if src.is_file():
                dst = site / src.relative_to(root)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
                copied.append(dst)
    return copied


def post_render(root: Path, config: dict, site: Path) -> int:
    """Run `project: post-render` scripts as Quarto does: from the project folder, with
    QUARTO_PROJECT_OUTPUT_DIR set to the site; .py scripts with the book's .venv python.
    Returns 0, or 1 after saying which script failed."""
    scripts = config.get("project", {}).get("post-render") or []
    venv_python = root / ".venv" / "bin" / "python"
    env = dict(os.environ, QUARTO_PROJECT_OUTPUT_DIR=str(site.resolve()), QUARTO_PROJECT_RENDER_ALL="1",
               QUARTO_PROJECT_OUTPUT_FILES="\n".join(str(p.resolve()) for p in sorted(site.rglob("*.html"))))
    for script in [scripts] if isinstance(scripts, str) else scripts:
        args = shlex.split(script)
        if args[0].endswith(".py"):
            args = [str(venv_python if venv_python.exists() else sys.executable), *args]
        elif Path(args[0]).suffix in (".ts", ".lua", ".R"):
            print(f"post-render {script}: the fallback runs only .py and executable scripts", file=sys.stderr)
            return 1
        print(f"running post-render {script}", flush=True)
        if subprocess.call(args, cwd=root, env=env) != 0:
            print(f"post-render {script} failed; the site was not updated", file=sys.stderr)
            return 1
    return 0
