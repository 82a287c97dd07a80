#!/usr/bin/env python3
"""Build the book: the chapter notebooks, and the site in _book/.

    tools/book.py notebooks   write notebooks/NN-name.ipynb for every chapter in _quarto.yml
    tools/book.py check       exit 1 when notebooks/ has drifted from the chapters
    tools/book.py build       `quarto render` when Quarto is on the PATH; otherwise (or with
                              --fallback) execute every chapter and export it with nbconvert

The fallback does the parts of Quarto a reader notices: it hides `include: false` cells, numbers
chapters, sections, figures, tables and equations, resolves @fig-/@tbl-/@sec-/@eq- references,
turns [@key] and @key into author-year citations from references.bib, and draws callouts.
Chapters listed in _quarto.yml that do not exist yet are skipped with a message.
"""
from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import html
import itertools
import json
import mimetypes
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
HAND_MADE = {"explore.ipynb"}                # notebooks/ files that no chapter generates
NOT_CHAPTERS = {"index.qmd", "references.qmd"}
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
XREF_NAMES = {"fig": "Figure", "tbl": "Table"}
REFS_MARKER = "<!-- the book's references -->"

# ------------------------------------------------------------------ the book and its notebooks


@dataclass
class Page:
    """One file of the book, and what the fallback build learns about it."""
    src: Path
    number: str | None                       # "1"... for chapters, "A"... for appendices
    part: str | None = None
    title: str = ""
    nb: nbformat.NotebookNode | None = None
    counts: dict = field(default_factory=lambda: {"fig": 0, "tbl": 0, "eq": 0, "sec": [0] * 7})
    seconds: float = 0.0
    peak_mb: float = 0.0

    @property
    def href(self) -> str:
        return f"{self.src.stem}.html"

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
            pages.append(Page(src, number, part))
        elif not quiet:
            print(f"skipping {name}: not written yet", file=sys.stderr)
    return pages


def chapters(root: Path, quiet: bool = True) -> list[Page]:
    return [p for p in book_pages(root, quiet) if p.src.name not in NOT_CHAPTERS]


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
    """A chapter's notebook: its cells, no outputs, stable ids (a cell's label, else a hash)."""
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


def notebook_json(nb) -> str:
    return nbformat.writes(nb).rstrip("\n") + "\n"


def expected_notebooks(root: Path, quiet: bool = True) -> dict[Path, str]:
    return {root / "notebooks" / f"{p.src.stem}.ipynb": notebook_json(to_notebook(p.src.read_text()))
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


# ------------------------------------------------------------------ references.bib


def clean_tex(value: str) -> str:
    """A BibTeX value as text: accents and $\\beta$ to Unicode, no braces, no \\& escapes."""
    marks = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", "c": "\u0327"}
    value = re.sub(r"\{?\\([\"'`^~c])\s*\{?(\w)\}?\}?", lambda m: m[2] + marks[m[1]], value)
    value = re.sub(r"\$\\([a-z]+)\$", lambda m: unicodedata.lookup(f"GREEK SMALL LETTER {m[1].upper()}"), value)
    value = value.replace("\\&", "&").replace("---", "\u2014").replace("--", "\u2013")
    return unicodedata.normalize("NFC", re.sub(r"\s+", " ", re.sub(r"[{}]", "", value))).strip()


def parse_bibtex(text: str) -> dict[str, dict]:
    """key -> fields: lower-case names, clean values, `authors` as 'First Last' strings."""
    value = r'\{(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\}|"[^"]*"|[\w.-]+'
    entries = {}
    for chunk in re.split(r"(?m)^\s*@", text)[1:]:
        head = re.match(r"(\w+)\s*\{\s*([^,\s]+)\s*,", chunk)
        if not head or head[1].lower() in ("comment", "string", "preamble"):
            continue
        raw = {k.lower(): v[1:-1] if v[0] in '{"' else v
               for k, v in re.findall(rf"([\w-]+)\s*=\s*({value})", chunk[head.end():])}
        authors = [" ".join(reversed(clean_tex(a).split(", ", 1)))
                   for a in re.split(r"\s+and\s+", raw.get("author", "")) if a.strip()]
        entries[head[2]] = {k: clean_tex(v) for k, v in raw.items()} | {"type": head[1].lower(), "authors": authors}
    return entries


def cite_label(entry: dict, year_only: bool = False) -> str:
    """'Kingma and Welling 2013', 'Higgins et al. 2017' (or just '2017')."""
    last = [a.split()[-1] for a in entry["authors"]] or ["Anon."]
    names = " and ".join(last) if len(last) <= 2 else f"{last[0]} et al."
    return entry.get("year", "n.d.") if year_only else f"{names} {entry.get('year', 'n.d.')}"


def reference_html(key: str, e: dict) -> str:
    """One entry of a references list, author-date style, linked to the paper."""
    a = e["authors"]
    authors = " and ".join(a) if len(a) <= 2 else ", ".join(a[:-1]) + ", and " + a[-1]
    venue = e.get("journal") or e.get("booktitle") or e.get("howpublished") or ""
    details = f" {e['volume']}" + (f" ({e['number']})" if e.get("number") else "") \
        if e["type"] == "article" and e.get("volume") else ""
    details += ((": " if e["type"] == "article" else ", ") + e["pages"]) if e.get("pages") else ""
    work = f"<em>{e['title']}</em>. {e.get('publisher', '')}" if e["type"] == "book" \
        else f"“{e.get('title', key)}.” <em>{venue}</em>{details}"
    url = e.get("url") or (f"https://doi.org/{e['doi']}" if e.get("doi") else "") \
        or (f"https://arxiv.org/abs/{e['eprint']}" if e.get("eprint") else "")
    link = f' <a href="{html.escape(url)}">{html.escape(url)}</a>' if url else ""
    return f'<p class="reference" id="ref-{key}">{authors}. {e.get("year", "n.d.")}. {work}.{link}</p>'


def references_html(keys, bib: dict) -> str:
    order = sorted(set(keys), key=lambda k: (cite_label(bib[k]).lower(), k))
    return "\n".join(['<div class="references">'] + [reference_html(k, bib[k]) for k in order] + ["</div>"])


# ------------------------------------------------------------------ Quarto markdown -> plain markdown

FENCED = re.compile(r"^(`{3,}|~{3,})[^\n]*\n.*?^\1[ \t]*$", re.M | re.S)
CODE_OR_MATH = re.compile(r"(`{3,}).*?\1|\$\$.*?\$\$|`[^`\n]+`|\$[^$\n]+\$", re.S)
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)(?:[ \t]+\{([^}]*)\})?[ \t]*$", re.M)
EQUATION = re.compile(r"\$\$(.*?)\$\$[ \t]*\{#(eq-[\w:-]+)\}", re.S)
DIV_OPEN = re.compile(r"^:{3,}\s*(?:\{([^}]*)\}|([\w-]+))\s*$")
XREF = re.compile(r"(?<![\w@])@((?:fig|tbl|eq|sec)-[\w:-]*\w)")
BRACKET_CITE = re.compile(r"\[([^\[\]]*?-?@[^\[\]]*?)\](?!\()")
CITE = re.compile(r"^(|.*?\s)(-?)@([\w:.-]*\w)\s*,?\s*(.*)$", re.S)
INTEXT_CITE = re.compile(r"(?<![\w@/.])@([A-Za-z_][\w:.-]*\w)")
QMD_LINK = re.compile(r"\]\((?:[^()\s]*/)?([\w.-]+)\.qmd(#[^()\s]*)?\)")


@functools.cache
def warn(message: str) -> None:              # once per message
    print(f"warning: {message}", file=sys.stderr)


def outside(pattern: re.Pattern, text: str, fn) -> str:
    """Apply fn to the parts of text that pattern does not match (code, math)."""
    out, last = [], 0
    for m in pattern.finditer(text):
        out += [fn(text[last:m.start()]), m[0]]
        last = m.end()
    return "".join(out + [fn(text[last:])])


def inline_html(md: str) -> str:
    """One line of markdown as HTML, for titles that go inside HTML tags."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    return re.sub(r"^<p>(.*)</p>$", r"\1", markdown2html_mistune(md).strip(), flags=re.S)


def open_div(spec: str) -> tuple[list[str], str, str | None]:
    """`::: {.callout-tip collapse="true"}` -> (opening HTML lines, closing tag, pending title)."""
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', spec))
    spec = re.sub(r'[\w-]+="[^"]*"', "", spec)
    classes, ids = re.findall(r"\.([\w-]+)", spec), re.findall(r"#([\w-]+)", spec)
    kind = next((c.removeprefix("callout-") for c in classes if c.startswith("callout-")), None)
    if "refs" in ids:
        return [REFS_MARKER], "", None
    if not kind:
        ident = f' id="{ids[0]}"' if ids else ""
        return [f'<div{ident} class="{" ".join(classes)}">'], "</div>", None
    tag, title = ("details", "summary") if attrs.get("collapse") == "true" else ("div", "div")
    head = [f'<{title} class="callout-title">{inline_html(attrs["title"])}</{title}>'] if "title" in attrs else []
    return [f'<{tag} class="callout callout-{kind}">', *head], f"</{tag}>", None if head else kind.title()


def render_divs(md: str) -> str:
    """Pandoc fenced divs -> HTML: callouts become titled boxes, <details> when collapsible."""
    out, stack, pending, in_code = [], [], None, False
    for line in md.split("\n"):
        in_code ^= bool(re.match(r"(```|~~~)", line))
        if pending and line.strip():         # a callout's title: its first line when a heading
            title = re.match(r"#{1,6}\s+(.*)", line)
            tag = "summary" if stack[-1] == "</details>" else "div"
            out += [f'<{tag} class="callout-title">{inline_html(title[1]) if title else pending}</{tag}>', ""]
            pending = None
            if title:
                continue
        opening = None if in_code else DIV_OPEN.match(line)
        if opening:
            lines, closer, pending = open_div(opening[1] or "." + opening[2])
            out += ["", *lines, ""]
            stack.append(closer)
        elif not in_code and re.match(r"^:{3,}\s*$", line):
            out += ["", stack.pop(), ""] if stack else []      # a stray closer is dropped
        else:
            out.append(line)
    return "\n".join(out + stack[::-1])


def number_headings(md: str, page: Page, labels: dict) -> str:
    """`## Title {#sec-x}` -> `## 3.2 Title` with an anchor; records the page title and labels."""
    def heading(m):
        level, title, attrs = len(m[1]), m[2], m[3] or ""
        ident = re.search(r"#([\w:-]+)", attrs)
        numbered = page.number and "unnumbered" not in attrs and not re.search(r"(^|\s)-(\s|$)", attrs)
        number, sec = page.number, page.counts["sec"]
        if level == 1:
            page.title = page.title or title
        else:
            sec[level], sec[level + 1:] = sec[level] + 1, [0] * (6 - level)
            number = ".".join([str(page.number)] + [str(n) for n in sec[2:level + 1]])
        if ident and ident[1].startswith("sec-"):
            name = ("Appendix" if number.isalpha() else "Chapter") if level == 1 else "Section"
            labels[ident[1]] = (f"{name} {number}" if numbered else title, f"{page.href}#{ident[1]}")
        anchor = f'<a id="{ident[1]}"></a>' if ident else ""
        return f"{m[1]} {anchor}" + (f'<span class="section-number">{number}</span> {title}' if numbered else title)
    return outside(FENCED, md, lambda s: HEADING.sub(heading, s))


def number_equations(md: str, page: Page, labels: dict) -> str:
    """`$$ ... $$ {#eq-x}` -> the equation with \\tag{3.1}, and an anchor."""
    def equation(m):
        number = page.numbered("eq")
        labels[m[2]] = (f"Equation ({number})", f"{page.href}#{m[2]}")
        return f'<a id="{m[2]}"></a>$${m[1].rstrip()} \\tag{{{number}}}$$'
    return outside(FENCED, md, lambda s: EQUATION.sub(equation, s))


def resolve_references(md: str, labels: dict, bib: dict, cited: list) -> str:
    """@fig-x -> a link 'Figure 1.1'; [@key] -> '(Author Year)'; @key -> 'Author (Year)'."""
    def xref(m):
        if m[1] not in labels:
            warn(f"unresolved cross-reference @{m[1]}")
            return f"<strong>?@{m[1]}</strong>"
        return f'<a href="{labels[m[1]][1]}">{labels[m[1]][0]}</a>'

    def cite(prefix, minus, key, locator):
        if key not in bib:
            warn(f"citation @{key} is not in references.bib")
            return f"<strong>?{key}</strong>"
        cited.append(key)
        return f'{prefix}<a href="#ref-{key}">{cite_label(bib[key], bool(minus))}</a>' + (f", {locator}" if locator else "")

    def bracket(m):
        parts = [CITE.match(p.strip()) for p in m[1].split(";")]
        return "(" + "; ".join(cite(*p.groups()) for p in parts) + ")" if all(parts) else m[0]

    def intext(m):
        if m[1] not in bib:                  # e.g. a decorator named in prose
            return m[0]
        return f"{cite_label(bib[m[1]]).rsplit(' ', 1)[0]} ({cite('', '-', m[1], '')})"

    def prose(text):
        text = QMD_LINK.sub(r"](\1.html\2)", text)      # links to chapters go to their pages
        return INTEXT_CITE.sub(intext, BRACKET_CITE.sub(bracket, XREF.sub(xref, text)))
    return outside(CODE_OR_MATH, md, prose)


def embed_images(md: str, folder: Path) -> str:
    """![alt](file.png) -> the image inline as a data: URI, so that every page stands alone."""
    def embed(m):
        path = folder / m[2]
        if re.match(r"\w+:", m[2]) or not path.is_file():
            return m[0]
        mime = mimetypes.guess_type(path.name)[0] or "image/png"
        return f"![{m[1]}](data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()})"
    return outside(FENCED, md, lambda s: re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)", embed, s))


# ------------------------------------------------------------------ notebook passes of the fallback


def markdown_cell(source: str, tag: str | None = None):
    cell = nbformat.v4.new_markdown_cell(source)
    cell.metadata["tags"] = [tag] if tag else []
    return cell


def prepare(page: Page, labels: dict, code_fold=False) -> None:
    """Before execution: merge markdown cells, add captions, number and draw the markdown."""
    cells = []
    for cell in page.nb.cells:
        if cell.cell_type == "markdown":     # jupytext splits at blank lines; callouts may span them
            if cells and cells[-1].cell_type == "markdown" and not cells[-1].metadata.get("tags"):
                cells[-1].source += "\n\n" + cell.source
            else:
                cells.append(cell)
            continue
        options, code = cell_options(cell.source)
        cell.metadata["quarto"] = options = {"code-fold": code_fold} | options
        if options.get("eval") is False:     # shown, never run
            if options.get("include") is not False and options.get("echo") is not False:
                cells.append(markdown_cell(f"```python\n{code}\n```"))
            continue
        cells.append(cell)
        kind = str(options.get("label", ""))[:3]
        if kind in XREF_NAMES and options.get("include") is not False:
            name = f"{XREF_NAMES[kind]} {page.numbered(kind)}"
            labels[options["label"]] = (name, f"{page.href}#cell-id={cell.id}")
            caption = markdown_cell(f"**{name}**: {options.get(kind + '-cap', '')}", "quarto-caption")
            cells.insert(len(cells) - (kind == "tbl"), caption)  # tables: caption above
    for cell in cells:
        if cell.cell_type == "markdown":
            md = embed_images(render_divs(cell.source), page.src.parent)
            cell.source = number_equations(number_headings(md, page, labels), page, labels)
    page.nb.cells = cells
    page.title = page.title or page.src.stem


def finish(nb) -> None:
    """After execution: drop include:false cells, hide or fold code, strip `#|` lines."""
    cells = []
    for cell in nb.cells:
        options = cell.metadata.pop("quarto", None)
        if options is not None:
            if options.get("include") is False:
                continue
            cell.source = cell_options(cell.source)[1]
            if options.get("output") is False:
                cell.outputs = []
            if options.get("warning") is False:
                cell.outputs = [o for o in cell.outputs if o.get("name") != "stderr"]
            fold = options["code-fold"] and options.get("echo") is not False
            if fold:
                state = " open" if options["code-fold"] == "show" else ""
                cells.append(markdown_cell(
                    f'<details class="code-fold"{state}><summary>{options.get("code-summary", "Code")}</summary>'
                    f"\n\n```python\n{cell.source}\n```\n\n</details>", "quarto-fold"))
            if fold or options.get("echo") is False:
                cell.metadata["transient"] = {"remove_source": True}
        cells.append(cell)
    nb.cells = cells


def execute(nb, cwd: Path, timeout: int = 600) -> float:
    """Run nb in a fresh python3 kernel in cwd. Returns the kernel's peak memory in MB."""
    from nbclient import NotebookClient
    nb.cells.append(nbformat.v4.new_code_cell(
        "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"))
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        probe = nb.cells.pop()
    kb = int(probe.outputs[0].text) if probe.get("outputs") else 0
    return kb / (1024 ** 2 if sys.platform == "darwin" else 1024)


# ------------------------------------------------------------------ the fallback site

STYLE = """\
body { max-width: 900px; margin: 0 auto !important; padding: 1rem 1.5rem 4rem !important; }
body, .jp-RenderedHTMLCommon { font-size: 16px; line-height: 1.6; }
.jp-RenderedHTMLCommon { padding-right: 0; }
.jp-RenderedHTMLCommon p { margin-bottom: 0.8em; }
.jp-Cell { padding: 3px 0; }
.jp-RenderedMarkdown pre { background: #f6f8fa; padding: 0.6em 0.8em; border-radius: 4px; }
img { max-width: 100% !important; height: auto; }
.jp-RenderedImage { text-align: center; }
.celltag_quarto-caption p { text-align: center !important; color: #444; font-size: 0.95em; }
.section-number { color: #6c757d; margin-right: 0.3em; }
.callout { border: 1px solid #dee2e6; border-left: 5px solid #0d6efd; border-radius: 6px;
           padding: 0.2rem 1rem; margin: 1rem 0; background: #f5f9ff; }
.callout-title { font-weight: 600; margin: 0.5rem 0 0.3rem; }
details > summary { cursor: pointer; }
.callout-tip { border-left-color: #198754; background: #f2faf5; }
.callout-warning { border-left-color: #e0a800; background: #fffaeb; }
.callout-caution { border-left-color: #fd7e14; background: #fff5ed; }
.callout-important { border-left-color: #dc3545; background: #fdf2f3; }
details.code-fold > summary { color: #6c757d; font-size: 0.9em; }
.book-nav, .book-pager { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.book-nav { font-size: 0.9em; border-bottom: 1px solid #dee2e6; padding-bottom: 0.5rem; margin-bottom: 1rem; }
.book-pager { display: flex; justify-content: space-between; border-top: 1px solid #dee2e6;
              margin-top: 2rem; padding-top: 0.5rem; }
.jp-RenderedHTMLCommon .book-toc, .jp-RenderedHTMLCommon .book-toc ul { list-style: none !important; padding-left: 1.2em; }
.book-toc li.part { font-weight: 600; margin-top: 0.6em; }
.book-toc li.part ul { font-weight: normal; }
.reference { padding-left: 2em; text-indent: -2em; }
a { color: #2780e3; }
"""

FALLBACK_NOTE = """::: {.callout-note}
## This is the fallback build
Quarto is not installed, so `tools/book.py` executed every chapter and exported it with
nbconvert. `quarto render` gives the full site, with its sidebar, search, cross-references
and citations; this one keeps all the content, numbered figures and links included.
:::"""


def page_nav(pages: list[Page], i: int, title: str) -> tuple[str, str]:
    """The bar on top of page i, and the previous/next links under it."""
    top = f'<nav class="book-nav"><a href="index.html">{html.escape(title)}</a></nav>'
    prev = f'<a href="{pages[i - 1].href}">← {pages[i - 1].label}</a>' if i > 0 else "<span></span>"
    nxt = f'<a href="{pages[i + 1].href}">{pages[i + 1].label} →</a>' if i + 1 < len(pages) else ""
    return top, f'<nav class="book-pager">{prev}{nxt}</nav>'


def contents_html(pages: list[Page]) -> str:
    """The table of contents of the index page, in parts."""
    items = []
    for part, group in itertools.groupby(pages, key=lambda p: p.part):
        links = "".join(f'<li><a href="{p.href}">{p.label}</a></li>' for p in group)
        items.append(f'<li class="part">{html.escape(part)}<ul>{links}</ul></li>' if part else links)
    return '<h2 id="contents">Contents</h2>\n<ul class="book-toc">' + "".join(items) + "</ul>"


def export_site(pages: list[Page], title: str, site: Path) -> None:
    """One HTML page per notebook, plus style.css, into site/."""
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(template_name="lab", exclude_input_prompt=True, exclude_output_prompt=True)
    site.mkdir(parents=True)
    (site / "style.css").write_text(STYLE)
    for i, page in enumerate(pages):
        body, _ = exporter.from_notebook_node(page.nb, resources={"metadata": {
            "name": f"{page.label} – {title}", "path": str(page.src.parent)}})
        top, bottom = page_nav(pages, i, title)
        body = body.replace("</head>", '<link rel="stylesheet" href="style.css">\n</head>', 1)
        body = re.sub(r"<body[^>]*>", lambda m: m[0] + top, body, count=1)
        (site / page.href).write_text(body.replace("</body>", bottom + "</body>", 1))


# ------------------------------------------------------------------ building


def load_book(root: Path, config: dict) -> list[Page]:
    """Every page as a notebook ready to run: numbered, cross-referenced, cited."""
    bib_file = root / config.get("bibliography", "references.bib")
    bib = parse_bibtex(bib_file.read_text()) if bib_file.exists() else {}
    fold = config.get("format", {}).get("html", {}).get("code-fold", False)
    pages, labels, everything = book_pages(root), {}, []
    if not any(p.src.name == "index.qmd" for p in pages):  # the reader always gets an index.html
        pages.insert(0, Page(root / "index.qmd", None))
    for page in pages:                       # every label of the book first, then the references
        text = page.src.read_text() if page.src.exists() else f"# {config['book'].get('title')} {{.unnumbered}}\n"
        if page.src.name == "index.qmd":     # the note goes under the title
            text = re.sub(r"^# .*\n", lambda m: f"{m[0]}\n{FALLBACK_NOTE}\n", text, count=1, flags=re.M)
        page.nb = to_notebook(text)
        prepare(page, labels, fold)
    for page in pages:
        if page.src.name == "index.qmd":
            page.nb.cells.append(markdown_cell(contents_html([p for p in pages if p is not page])))
        cited = []
        for cell in page.nb.cells:
            if cell.cell_type == "markdown":
                cell.source = resolve_references(cell.source, labels, bib, cited)
        everything += cited
        if cited and not any(REFS_MARKER in c.source for c in page.nb.cells):
            page.nb.cells.append(markdown_cell("## References\n\n" + references_html(cited, bib)))
    for page in pages:                       # references.qmd lists all the book cites
        for cell in page.nb.cells:
            cell.source = cell.source.replace(REFS_MARKER, references_html(everything, bib))
    return pages


def run_chapters(pages: list[Page], cwd: Path) -> list[str]:
    """Execute every page that has code, print times and memory. Returns the failures."""
    cwd.mkdir(exist_ok=True)
    failures = []
    for page in (p for p in pages if any(c.cell_type == "code" for c in p.nb.cells)):
        print(f"executing {page.src.relative_to(cwd.parent)} ...", flush=True)
        start = time.perf_counter()
        try:
            page.peak_mb = execute(page.nb, cwd)
        except Exception as error:           # CellExecutionError, a timeout, a dead kernel
            failures.append(f"{page.src.stem}: " + re.sub(r"\x1b\[[\d;]*m", "", str(error)).strip())
        page.seconds = time.perf_counter() - start
    timed = [p for p in pages if p.seconds]
    print(f"\n{'chapter':32s} {'time':>8s} {'peak memory':>12s}")
    for p in timed:
        print(f"{p.src.stem:32s} {p.seconds:7.1f}s {p.peak_mb:9.0f} MB")
    print(f"{'total':32s} {sum(p.seconds for p in timed):7.1f}s "
          f"{max([p.peak_mb for p in timed], default=0):9.0f} MB (the largest kernel)")
    kernels, builder = (resource.getrusage(who).ru_maxrss / 1024 for who in
                        (resource.RUSAGE_CHILDREN, resource.RUSAGE_SELF))
    print(f"max RSS (getrusage): kernels {kernels:.0f} MB, this process {builder:.0f} MB")
    return failures


def build_fallback(root: Path, out: Path | None = None) -> int:
    """Execute every chapter and export the site into out (default _book/). Returns 0 or 1."""
    config = read_config(root)
    pages = load_book(root, config)
    failures = run_chapters(pages, root / "notebooks")
    if failures:
        print("\nthe book was not built; these chapters failed:", *failures, sep="\n\n", file=sys.stderr)
        return 1
    for page in pages:
        finish(page.nb)
    work, out = root / ".book-build", out or root / "_book"
    shutil.rmtree(work, ignore_errors=True)  # build aside, then swap: _book/ is never half a site
    export_site(pages, config["book"].get("title", "Book"), work / "site")
    times = {p.src.stem: {"seconds": round(p.seconds, 2), "peak_mb": round(p.peak_mb)} for p in pages if p.seconds}
    (work / "site" / "build-times.json").write_text(json.dumps(times, indent=1) + "\n")
    if out.exists():
        out.rename(work / "old")
    (work / "site").rename(out)
    shutil.rmtree(work, ignore_errors=True)
    print(f"built {out / 'index.html'}")
    return 0


def build(root: Path, fallback: bool = False) -> int:
    """`quarto render` when Quarto is installed, the nbconvert fallback otherwise."""
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
