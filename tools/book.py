#!/usr/bin/env python3
"""Build the book: the chapter notebooks, and the site in _book/.

    tools/book.py notebooks   write notebooks/NN-name.ipynb for every chapter in _quarto.yml
    tools/book.py check       exit 1 when notebooks/ has drifted from the chapters
    tools/book.py build       `quarto render` when Quarto is on the PATH; otherwise (or with
                              --fallback) execute every chapter and export it with nbconvert

The parts: notebooks.py (the book's files and their notebooks), qmd.py (Quarto markdown to plain
markdown), bibtex.py (references.bib), fallback.py (the fallback build) and fallback_site.py (its
HTML pages, MathJax, resources and post-render scripts). Both builds execute every chapter every
time (`freeze: false` in _quarto.yml): Quarto cannot see that a chapter's checkpoints or the
vaebook package changed (bench/RESULTS.md records how long a whole build takes, and where).
Chapters listed in _quarto.yml that do not exist yet are skipped with a message.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the parts, when imported from elsewhere

from fallback import build_fallback  # noqa: E402
from notebooks import book_pages, chapters, notebook_problems, write_notebooks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


# ipykernel ≥ 7 warns at every start of a kernel whose manager did not provision CurveZMQ keys
# ("Kernel is running over TCP without encryption"): once per chapter in `make book`. The book's
# kernels listen on 127.0.0.1 only and every message is signed with a per-kernel key; Quarto's
# kernel manager (its jupyter.py) provisions no keys and takes no configuration that would, so
# the warning tells the reader of the build log nothing they could act on. The book's .venv
# kernels load this file (IPython reads sys.prefix/etc/ipython/) and drop that one message.
KERNEL_CONFIG = '''# Written by tools/book.py: see KERNEL_CONFIG there.
import logging


class _LoopbackTcpNotice(logging.Filter):
    def filter(self, record):
        return "running over TCP without encryption" not in record.getMessage()


logging.getLogger("IPKernelApp").addFilter(_LoopbackTcpNotice())
'''


def quiet_kernels(venv: Path) -> None:
    """Install KERNEL_CONFIG for the kernels of `venv` (when it exists and differs)."""
    path = venv / "etc" / "ipython" / "ipython_kernel_config.py"
    if venv.is_dir() and (not path.exists() or path.read_text() != KERNEL_CONFIG):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(KERNEL_CONFIG)
        os.replace(tmp, path)


def build(root: Path, fallback: bool = False) -> int:
    """`quarto render` when Quarto is installed, the nbconvert fallback otherwise."""
    quiet_kernels(root / ".venv")
    if shutil.which("quarto") and not fallback:
        python = root / ".venv" / "bin" / "python"
        book_pages(root)                     # says which listed chapters are missing
        env = dict(os.environ, QUARTO_PYTHON=str(python if python.exists() else sys.executable))
        return subprocess.call(["quarto", "render"], cwd=root, env=env)
    return build_fallback(root)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("notebooks", help="regenerate notebooks/ from the chapters")
    commands.add_parser("check", help="exit 1 when notebooks/ has drifted from the chapters")
    build_args = commands.add_parser("build", help="build the site into _book/")
    build_args.add_argument("--fallback", action="store_true", help="the nbconvert build, even with Quarto")
    args = parser.parse_args(argv)
    if args.command == "build":
        return build(ROOT, args.fallback)
    if args.command == "notebooks":
        write_notebooks(ROOT)
        return 0
    problems = notebook_problems(ROOT)
    if problems:
        print("notebooks/ does not match the chapters:", *problems, sep="\n  ", file=sys.stderr)
        print("run `make notebooks`", file=sys.stderr)
        return 1
    print(f"notebooks/ is up to date ({len(chapters(ROOT))} chapters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
