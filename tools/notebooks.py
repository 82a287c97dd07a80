"""The book as _quarto.yml lists it, and its chapter notebooks (notebooks/NN-name.ipynb).

A chapter's notebook is its .qmd read by jupytext: the same cells, no outputs, and stable cell
ids (a cell's `label`, else a hash of its source), so that regenerating it changes nothing.
The one difference: the exercises' solutions (`::: {.callout-tip collapse="true"
title="Solution"}` blocks, with their hidden `require` checks) stay in the book, so the reader
of the notebook gets each exercise's stub cell followed by its check cell.
"""
from __future__ import annotations

import hashlib
import itertools
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import jupytext
import nbformat
import yaml

HAND_MADE = {"explore.ipynb"}                # notebooks/ files that no chapter generates
NOT_CHAPTERS = {"index.qmd", "references.qmd"}
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
SOLUTION = re.compile(r'^(:{3,})[ \t]*\{\.callout-tip collapse="true" title="Solution"\}[ \t]*\n'
                      r".*?^\1[ \t]*(?:\n|\Z)", re.M | re.S)


@dataclass
class Page:
    """One file of the book, and what the fallback build learns about it."""
    src: Path
    number: str | None                       # "1"... for chapters, "A"... for appendices
    part: str | None = None
    name: str = ""                           # its path in the project, as _quarto.yml lists it
    title: str = ""
    nb: nbformat.NotebookNode | None = None
    counts: dict = field(default_factory=lambda: {"fig": 0, "tbl": 0, "eq": 0, "sec": [0] * 7})
    seconds: float = 0.0
    peak_mb: float = 0.0

    @property
    def href(self) -> str:
        """Where the page lands in the site, as Quarto puts it: chapters/01-x.qmd -> chapters/01-x.html."""
        return str(PurePosixPath(self.name or self.src.name).with_suffix(".html"))

    @property
    def label(self) -> str:
        return f"{self.number}\u2002{self.title}" if self.number else self.title

    def numbered(self, kind: str) -> str:
        """The next number of a figure, table or equation: '3.2'."""
        self.counts[kind] += 1
        return f"{self.number}.{self.counts[kind]}" if self.number else str(self.counts[kind])


def read_config(root: Path) -> dict:
    return yaml.safe_load((root / "_quarto.yml").read_text())


def listed_files(config: dict):
    """(file, part, is_appendix) for every file of the book, in reading order."""
    def walk(items, part=None, appendix=False):
        for item in items or []:
            if isinstance(item, dict):
                yield from walk(item.get("chapters"), item.get("part"), appendix)
            else:
                yield item, part, appendix
    yield from walk(config["book"].get("chapters"))
    yield from walk(config["book"].get("appendices"), "Appendices", True)


def book_pages(root: Path, quiet: bool = False) -> list[Page]:
    """The book's existing pages in order, numbered as Quarto numbers them."""
    pages, chapter, appendix = [], 0, 0
    for name, part, is_appendix in listed_files(read_config(root)):
        src = root / name
        number = None
        if name not in NOT_CHAPTERS and not (src.exists() and "unnumbered" in src.read_text().split("\n")[0]):
            chapter, appendix = chapter + (not is_appendix), appendix + is_appendix
            number = chr(ord("A") + appendix - 1) if is_appendix else str(chapter)
        if src.exists():
            pages.append(Page(src, number, part, name))
        elif not quiet:
            print(f"skipping {name}: not written yet", file=sys.stderr)
    return pages


def chapters(root: Path, quiet: bool = True) -> list[Page]:
    return [p for p in book_pages(root, quiet) if p.src.name not in NOT_CHAPTERS]


def notebook_path(root: Path, page: Page) -> Path:
    """notebooks/NN-name.ipynb, the notebook a chapter generates."""
    return root / "notebooks" / f"{page.src.stem}.ipynb"


def cell_options(source: str) -> tuple[dict, str]:
    """A code cell's `#|` options, and its code without them."""
    lines = source.split("\n")
    n = next((i for i, line in enumerate(lines) if not line.startswith("#|")), len(lines))
    block = [line[2:].removeprefix(" ") for line in lines[:n]]
    try:
        options = yaml.safe_load("\n".join(block))
    except yaml.YAMLError:                   # e.g. an unquoted caption with a colon in it
        options = {k.strip(): v.strip().strip("\"'") for k, v in (b.split(":", 1) for b in block if ":" in b)}
    return options if isinstance(options, dict) else {}, "\n".join(lines[n:]).strip("\n")


def to_notebook(text: str) -> nbformat.NotebookNode:
    """A chapter's cells, no outputs, stable ids (a cell's label, else a hash). The fallback
    build executes it as it is; notebooks/ gets :func:`reader_notebook`."""
    nb = jupytext.reads(text, fmt="Rmd")
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    seen = set()
    for cell in nb.cells:
        label = cell_options(cell.source)[0].get("label") if cell.cell_type == "code" else None
        base = str(label or hashlib.sha1(cell.source.encode()).hexdigest()[:8])
        cell.id = next(i for i in itertools.chain([base], (f"{base}-{k}" for k in itertools.count(1)))
                       if i not in seen)
        seen.add(cell.id)
    return nb


def without_solutions(text: str) -> str:
    """The chapter without its exercises' Solution callouts: the notebook is for solving them."""
    return SOLUTION.sub("", text)


def reader_notebook(text: str) -> nbformat.NotebookNode:
    """notebooks/NN-name.ipynb: the chapter's notebook without the exercises' solutions."""
    return to_notebook(without_solutions(text))


def notebook_json(nb) -> str:
    return nbformat.writes(nb).rstrip("\n") + "\n"


def expected_notebooks(root: Path, quiet: bool = True) -> dict[Path, str]:
    return {notebook_path(root, p): notebook_json(reader_notebook(p.src.read_text()))
            for p in chapters(root, quiet)}


def notebook_problems(root: Path) -> list[str]:
    """How notebooks/ differs from the chapters: missing, stale and extra notebooks."""
    expected = expected_notebooks(root)
    problems = [f"missing {p.relative_to(root)}" for p in expected if not p.exists()]
    problems += [f"stale {p.relative_to(root)}" for p, text in expected.items()
                 if p.exists() and p.read_text() != text]
    return problems + [f"extra {p.relative_to(root)} (no chapter makes it)"
                       for p in sorted((root / "notebooks").glob("*.ipynb"))
                       if p not in expected and p.name not in HAND_MADE]


def write_notebooks(root: Path) -> None:
    (root / "notebooks").mkdir(exist_ok=True)
    for path, text in expected_notebooks(root, quiet=False).items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(root)}")
    for problem in notebook_problems(root):  # only extra ones can be left
        print(f"note: {problem}; delete it if its chapter is gone")
