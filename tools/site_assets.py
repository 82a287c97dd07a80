#!/usr/bin/env python3
"""Post-render step of the book: copy the files the rendered pages load into the site.

Quarto runs it after `quarto render` (``project: post-render`` in _quarto.yml, with
QUARTO_PROJECT_OUTPUT_DIR set to the site folder); tools/book.py's fallback runs it the same way.
Usage by hand: ``python tools/site_assets.py [SITE_DIR]`` (default: $QUARTO_PROJECT_OUTPUT_DIR or _book).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    site = Path(argv[0] if argv else os.environ.get("QUARTO_PROJECT_OUTPUT_DIR") or ROOT / "_book")
    if not site.is_absolute():
        site = ROOT / site
    site.mkdir(parents=True, exist_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
