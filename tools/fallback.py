"""The fallback build, for machines without Quarto: every page as a notebook, executed, exported.

It does the parts of Quarto a reader notices: it hides `include: false` cells, numbers chapters,
sections, figures, tables and equations, resolves @fig-/@tbl-/@sec-/@eq- references, turns
[@key] and @key into author-year citations from references.bib, draws callouts, and puts each
page where Quarto puts it (tools/fallback_site.py writes the site).
"""
from __future__ import annotations

import json
import re
import resource
import shutil
import sys
import time
from pathlib import Path

import nbformat

import fallback_site
import qmd
from bibtex import parse_bibtex, references_html
from notebooks import NOT_CHAPTERS, Page, book_pages, cell_options, notebook_path, read_config, to_notebook

XREF_NAMES = {"fig": "Figure", "tbl": "Table"}


def markdown_cell(source: str, tag: str | None = None):
    cell = nbformat.v4.new_markdown_cell(source)
    cell.metadata["tags"] = [tag] if tag else []
    return cell


def html_cell(source: str):
    """A raw cell of HTML: the site writes it as it is, between the cells' elements."""
    return nbformat.v4.new_raw_cell(source, metadata={"raw_mimetype": "text/html"})


def split_at_divs(cells: list) -> list:
    """Fenced divs -> HTML (qmd.div_pieces), each tag that opens or closes a div in a raw cell
    of its own. A callout that holds code cells then wraps them, outputs included: in the page
    its <details> or <div> opens before their elements and closes after them, where inside one
    markdown cell's element the browser would close it at that element's end."""
    out, stack = [], []
    for cell in cells:
        pieces = qmd.div_pieces(cell.source, stack) if cell.cell_type == "markdown" else []
        if pieces == [("markdown", cell.source)] or cell.cell_type != "markdown":
            out.append(cell)
            continue
        for k, (kind, text) in enumerate(pieces):
            piece = html_cell(text) if kind == "html" else nbformat.v4.new_markdown_cell(text, metadata=dict(cell.metadata))
            piece.id = f"{cell.id}-{k}"[-64:]
            out.append(piece)
    return out + [html_cell(closer) for closer in stack[::-1]]


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
    cells = split_at_divs(cells)
    for cell in cells:
        if cell.cell_type == "markdown":
            md = qmd.embed_images(cell.source, page.src.parent)
            cell.source = qmd.number_equations(qmd.number_headings(md, page, labels), page, labels)
    page.nb.cells = cells
    page.title = page.title or page.src.stem


def add_downloads(page: Page, root: Path) -> None:
    """Under a chapter's title: links to its notebook and its .qmd (copied into the site as
    project resources, at the same paths as in the project)."""
    links = {"notebook (.ipynb)": notebook_path(root, page).relative_to(root).as_posix(),
             "source (.qmd)": page.name}
    line = fallback_site.downloads_html(links, page.href)
    for cell in page.nb.cells:
        title = re.search(r"(?m)^# .*$", cell.source) if cell.cell_type == "markdown" else None
        if title:
            cell.source = f"{cell.source[:title.end()]}\n\n{line}\n{cell.source[title.end():]}"
            return
    page.nb.cells.insert(0, markdown_cell(line))


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
        # "immediate": the outputs are in; stopping the kernel politely costs ~0.5 s a page
        NotebookClient(nb, timeout=timeout, kernel_name="python3", shutdown_kernel="immediate",
                       resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        probe = nb.cells.pop()
    kb = int(probe.outputs[0].text) if probe.get("outputs") else 0
    return kb / (1024 ** 2 if sys.platform == "darwin" else 1024)


def load_book(root: Path, config: dict) -> list[Page]:
    """Every page as a notebook ready to run: numbered, cross-referenced, cited."""
    bib_file = root / config.get("bibliography", "references.bib")
    bib = parse_bibtex(bib_file.read_text()) if bib_file.exists() else {}
    fold = config.get("format", {}).get("html", {}).get("code-fold", False)
    pages, labels, everything = book_pages(root), {}, []
    if not any(p.src.name == "index.qmd" for p in pages):  # the reader always gets an index.html
        pages.insert(0, Page(root / "index.qmd", None, name="index.qmd"))
    for page in pages:                       # every label of the book first, then the references
        text = page.src.read_text() if page.src.exists() else f"# {config['book'].get('title')} {{.unnumbered}}\n"
        if page.src.name == "index.qmd":     # the note goes under the title
            text = re.sub(r"^# .*\n", lambda m: f"{m[0]}\n{fallback_site.FALLBACK_NOTE}\n", text, count=1, flags=re.M)
        page.nb = to_notebook(text)
        prepare(page, labels, fold)
        if page.src.name not in NOT_CHAPTERS:
            add_downloads(page, root)
    for page in pages:
        if page.src.name == "index.qmd":
            page.nb.cells.append(markdown_cell(fallback_site.contents_html([p for p in pages if p is not page], page)))
        cited = []
        for cell in page.nb.cells:
            if cell.cell_type in ("markdown", "raw"):    # raw: a callout's title
                cell.source = qmd.resolve_references(cell.source, labels, bib, cited, page.href)
        everything += cited
        if cited and not any(qmd.REFS_MARKER in c.source for c in page.nb.cells):
            page.nb.cells.append(markdown_cell("## References\n\n" + references_html(cited, bib)))
    for page in pages:                       # references.qmd lists all the book cites
        for cell in page.nb.cells:
            cell.source = cell.source.replace(qmd.REFS_MARKER, references_html(everything, bib))
    return pages


def run_chapters(pages: list[Page], cwd: Path) -> list[str]:
    """Execute every page that has code, print times and memory. Returns the failures."""
    cwd.mkdir(exist_ok=True)
    failures = []
    for page in (p for p in pages if any(c.cell_type == "code" for c in p.nb.cells)):
        print(f"executing {page.name or page.src.name} ...", flush=True)
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
    """Execute every chapter and write the site into out (default _book/). Returns 0 or 1."""
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
    site = work / "site"
    fallback_site.export_site(pages, config["book"].get("title", "Book"), site)
    fallback_site.copy_resources(root, config, site)
    times = {p.src.stem: {"seconds": round(p.seconds, 2), "peak_mb": round(p.peak_mb)} for p in pages if p.seconds}
    (site / "build-times.json").write_text(json.dumps(times, indent=1) + "\n")
    if fallback_site.post_render(root, config, site) != 0:
        shutil.rmtree(work, ignore_errors=True)
        return 1
    if out.exists():
        out.rename(work / "old")
    site.rename(out)
    shutil.rmtree(work, ignore_errors=True)
    print(f"built {out / 'index.html'}")
    return 0
