#!/usr/bin/env python3
"""Post-render step of the book: write the files the rendered pages load into the site.

Quarto runs it after `quarto render` (``project: post-render`` in _quarto.yml, with
QUARTO_PROJECT_OUTPUT_DIR set to the site folder); tools/book.py's fallback runs it the same way.
Usage by hand: ``python tools/site_assets.py [SITE_DIR]`` (default: $QUARTO_PROJECT_OUTPUT_DIR or _book).

What it writes: ``<site>/explorer/``, the latent explorer of chapters 5 and 6 (see
:mod:`vaebook.explore.webexport`): the vendored TensorFlow.js files, the explorer's script and style,
and the decoders exported from the current checkpoints (a file is rewritten only when its
checkpoint, the test faces or the export code changed), so the pages never show a stale model;
and ``<site>/mathjax/``, the MathJax 2.7 of the jupyter-server-mathjax package, which the pages of
both builds load by a relative URL (``html-math-method`` in _quarto.yml and
chapters/_metadata.yml; tools/fallback_site.py), so formulas are typeset offline and from disk.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


def main(argv: list[str]) -> int:
    site = Path(argv[0] if argv else os.environ.get("QUARTO_PROJECT_OUTPUT_DIR") or ROOT / "_book")
    if not site.is_absolute():
        site = ROOT / site
    site.mkdir(parents=True, exist_ok=True)
    try:
        from vaebook.explore.webexport import write_explorer
    except ImportError as e:
        if VENV_PYTHON.exists() and Path(sys.executable).resolve() != VENV_PYTHON.resolve():
            os.execv(VENV_PYTHON, [str(VENV_PYTHON), __file__, str(site)])   # the book's environment
        raise SystemExit(f"site_assets: cannot import vaebook ({e}); run it with the book's environment "
                         "(.venv/bin/python, or QUARTO_PYTHON=.venv/bin/python for Quarto)") from e
    sizes = write_explorer(site)
    total = sum(sizes.values())
    print(f"site_assets: wrote {len(sizes)} files ({total / 1e6:.1f} MB) into {site / 'explorer'}")
    sys.path.insert(0, str(ROOT / "tools"))
    from fallback_site import copy_mathjax
    print(f"site_assets: copied MathJax ({copy_mathjax(site) / 1e6:.1f} MB) into {site / 'mathjax'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
