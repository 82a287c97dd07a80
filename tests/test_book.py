"""The book's structure and build tooling: _quarto.yml, chapters, notebooks, references.bib,
and an end-to-end run of tools/book.py's fallback build on a two-chapter mini-book."""
from __future__ import annotations

import fnmatch
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import bibtex  # noqa: E402  (tools/: book.py and its parts)
import fallback  # noqa: E402
import fallback_site  # noqa: E402
import notebooks  # noqa: E402
import qmd  # noqa: E402

BIB_KEYS = """kingma2013auto rezende2014stochastic doersch2016tutorial higgins2017beta
burgess2018understanding burda2015importance ghosh2020variational chen2018isolating liu2015celeba
kingma2019introduction williams1992simple mohamed2020monte tipping1999probabilistic heusel2017gans
rybkin2021simple alemi2018fixing goodfellow2016deep bowman2016generating locatello2019challenging
kim2018disentangling""".split()


def listed(root: Path = ROOT) -> list[str]:
    return [name for name, _, _ in notebooks.listed_files(notebooks.read_config(root))]


def existing_chapters() -> list[Path]:
    return [p.src for p in notebooks.chapters(ROOT)]


def code_cells(path: Path) -> list[tuple[dict, str]]:
    nb = notebooks.to_notebook(path.read_text())
    return [notebooks.cell_options(c.source) for c in nb.cells if c.cell_type == "code"]


def prose(path: Path) -> str:
    """A chapter's markdown without code blocks, code spans or math."""
    nb = notebooks.to_notebook(path.read_text())
    text = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return qmd.CODE_OR_MATH.sub(" ", text)


# ------------------------------------------------------------------ the real book


def test_quarto_yml_is_a_book_listing_the_chapters_in_order():
    config = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    assert {k: config["project"][k] for k in ("type", "output-dir", "post-render")} == {
        "type": "book", "output-dir": "_book", "post-render": "tools/site_assets.py"}
    assert config["bibliography"] == "references.bib" and config["number-sections"] is True
    assert config["jupyter"] == "python3"
    assert (ROOT / config["format"]["html"]["css"]).is_file()
    files = listed()
    assert files[0] == "index.qmd" and "references.qmd" in files
    chapters = [f for f in files if f.startswith("chapters/")]
    numbers = [int(re.match(r"chapters/(\d\d)-", f)[1]) for f in chapters]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), chapters
    assert config["book"]["appendices"] == ["chapters/07-celeba.qmd", "chapters/08-reproducibility.qmd"]
    on_disk = {f"chapters/{p.name}" for p in (ROOT / "chapters").glob("*.qmd")}
    assert on_disk <= set(files), f"chapters missing from _quarto.yml: {on_disk - set(files)}"
    assert (ROOT / "index.qmd").exists()


def test_every_render_executes_every_chapter():
    """No frozen outputs: Quarto re-runs a frozen chapter only when its .qmd changes, not when
    checkpoints/ or vaebook/ do, so a frozen site could show models that no longer exist."""
    config = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    assert config["execute"]["freeze"] is False
    for path in [ROOT / "index.qmd", *existing_chapters()]:
        assert not re.search(r"(?m)^\s*freeze:", path.read_text()), f"{path.name} sets freeze itself"


def test_chapter_pages_link_their_notebook_and_source_in_quarto():
    """_quarto.yml copies every notebook and chapter source into the site (`resources`), and its
    filter puts the two links under each chapter's title, at the paths those files land on."""
    config = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    resources = config["project"]["resources"]
    for page in notebooks.chapters(ROOT):
        source = page.src.relative_to(ROOT).as_posix()
        notebook = notebooks.notebook_path(ROOT, page).relative_to(ROOT).as_posix()
        for path in (source, notebook):
            assert any(fnmatch.fnmatch(path, glob) for glob in resources), f"{path} is not a resource"
        assert (ROOT / notebook).exists()
    lua = (ROOT / "tools" / "download-links.lua").read_text()
    assert "tools/download-links.lua" in config["filters"]
    assert 'href="../notebooks/%s.ipynb"' in lua and "chapters" in lua
    assert 'href="%s.qmd" download data-noresolveinput' in lua  # else Quarto links the .html


def test_notebooks_are_up_to_date():
    problems = notebooks.notebook_problems(ROOT)
    assert not problems, "run `make notebooks`: " + "; ".join(problems)


@pytest.mark.parametrize("path", existing_chapters(), ids=lambda p: p.stem)
def test_chapter_opens_with_title_and_setup_cell(path):
    assert re.match(r"# .+ \{#sec-[\w-]+\}\n", path.read_text()), "first line: # Title {#sec-name}"
    options, code = code_cells(path)[0]
    assert options.get("include") is False
    assert "from vaebook.plotting import setup" in code and "setup()" in code


@pytest.mark.parametrize("path", existing_chapters(), ids=lambda p: p.stem)
def test_figures_have_captions_and_are_referenced(path):
    labels = [(str(o.get("label")), o) for o, _ in code_cells(path) if str(o.get("label", "")).startswith("fig-")]
    assert all("fig-cap" in o for _, o in labels), [l for l, o in labels if "fig-cap" not in o]
    defined = {l for l, _ in labels}
    referenced = set(re.findall(r"(?<![\w@])@(fig-[\w:-]*\w)", prose(path)))
    in_book = {str(o.get("label")) for p in existing_chapters() for o, _ in code_cells(p)}
    assert referenced <= in_book, f"@references to no figure of the book: {referenced - in_book}"
    assert defined <= referenced, f"figures never referenced: {defined - referenced}"


@pytest.mark.parametrize("path", existing_chapters(), ids=lambda p: p.stem)
def test_plotting_code_is_folded_or_hidden(path):
    """The preface promises it: a figure's code is folded (code-fold) or not shown at all."""
    shown = [str(o["label"]) for o, _ in code_cells(path) if str(o.get("label", "")).startswith("fig-")
             and o.get("code-fold") is not True and o.get("echo") is not False and o.get("include") is not False]
    assert not shown, f"figure code shown unfolded (add `#| code-fold: true`): {shown}"


def test_every_citation_is_in_references_bib():
    bib = bibtex.parse_bibtex((ROOT / "references.bib").read_text())
    pages = [ROOT / f for f in listed() if (ROOT / f).exists()]
    cited = set()
    for page in pages:
        text = prose(page)
        for group in re.findall(r"\[([^\[\]]*@[^\[\]]*)\]", text):
            cited |= set(re.findall(r"(?:^|[\s;-])@([\w:.-]*\w)", group)) - {""}
        cited |= set(re.findall(r"(?<![\w@/.])@([a-z]+\d{4}[a-z]\w*)", text))  # in-text @key
    cited = {k for k in cited if not re.match(r"(fig|sec|eq|tbl)-", k)}
    assert cited <= set(bib), f"not in references.bib: {cited - set(bib)}"


def test_no_citation_repeats_the_authors_just_named():
    """'Burda et al. [@burda2015importance]' renders as 'Burda et al. (Burda et al. 2015)'; after
    the names the citation is [-@key] (just the year) or the in-text @key (names and year)."""
    bib = bibtex.parse_bibtex((ROOT / "references.bib").read_text())
    doubled = []
    for page in [ROOT / f for f in listed() if (ROOT / f).exists()]:
        text = re.sub(r"\s+", " ", prose(page))
        for m in re.finditer(r"\[@([\w:.-]*\w)", text):
            first = bib.get(m[1], {}).get("authors", ["?"])[0].split()[-1]
            before = text[max(0, m.start() - 60):m.start()]
            if re.search(rf"\b{re.escape(first)}(?:'s)?\b[^.;()]*(?:et al\.)?[^.;()]*$", before.replace("et al.", "et al")):
                doubled.append(f"{page.name}: ...{before[-40:]}[@{m[1]}]")
    assert not doubled, "the authors are named twice; write [-@key] or @key:\n" + "\n".join(doubled)


def test_references_bib_has_the_books_entries():
    bib = bibtex.parse_bibtex((ROOT / "references.bib").read_text())
    assert set(BIB_KEYS) <= set(bib)
    for key in BIB_KEYS:
        assert bib[key]["authors"] and bib[key]["title"] and re.fullmatch(r"\d{4}", bib[key]["year"]), key
    assert bibtex.cite_label(bib["kingma2013auto"]) == "Kingma and Welling 2013"
    assert bibtex.cite_label(bib["higgins2017beta"]) == "Higgins et al. 2017"
    assert "Schölkopf" in bib["ghosh2020variational"]["authors"][-1]


# ------------------------------------------------------------------ the tooling, on its own


def test_notebooks_are_deterministic_and_clean():
    text = "# T {#sec-t}\n\n```{python}\n#| label: fig-a\n#| fig-cap: A\nx = 1\n```\n\nSee @fig-a.\n"
    first, second = (notebooks.notebook_json(notebooks.to_notebook(text)) for _ in range(2))
    assert first == second and first.endswith("}\n")
    nb = json.loads(first)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code[0]["id"] == "fig-a" and code[0]["outputs"] == []
    assert "".join(code[0]["source"]).startswith("#| label: fig-a")


def test_markdown_passes():
    page = notebooks.Page(Path("chapters/03-elbo.qmd"), "3")
    labels = {}
    md = qmd.render_divs('::: {.callout-tip collapse="true"}\n## Why?\nBecause.\n:::')
    assert '<details class="callout callout-tip">' in md and "Why?</summary>" in md and ":::" not in md
    md = qmd.number_headings("# The ELBO {#sec-elbo}\n\n## Bound {#sec-bound}\n\n```\n# code\n```", page, labels)
    assert "<span class=\"section-number\">3.1</span> Bound" in md and "# code" in md
    assert labels["sec-elbo"][0] == "Chapter 3" and labels["sec-bound"][0] == "Section 3.1"
    md = qmd.number_equations("$$\na = b\n$$ {#eq-ab}", page, labels)
    assert "\\tag{3.1}$$" in md and "{#eq" not in md
    bib = bibtex.parse_bibtex("@article{a2020x, author={Doe, Jane and Roe, R.}, title={T}, year={2020}}")
    cited = []
    md = qmd.resolve_references("As @eq-ab and [@a2020x] and @a2020x show; `@a2020x`", labels, bib, cited)
    assert 'Equation (3.1)</a>' in md and "(<a href=\"#ref-a2020x\">Doe and Roe 2020</a>)" in md
    assert "Doe and Roe (<a" in md and "`@a2020x`" in md and cited == ["a2020x", "a2020x"]


# ------------------------------------------------------------------ the fallback build, end to end

MINI_CONFIG = """project: {type: book, output-dir: _book, resources: [notebooks/*.ipynb, chapters/*.qmd]}
book:
  title: Mini
  chapters:
    - index.qmd
    - part: Part one
      chapters: [chapters/01-one.qmd, chapters/02-two.qmd, chapters/03-missing.qmd]
    - references.qmd
bibliography: references.bib
"""
CHAPTER_ONE = """# One {#sec-one}

```{python}
#| include: false
import matplotlib.pyplot as plt
SECRET = "hidden-setup-code"
```

A curve in @fig-curve, after @doe2020x.

::: {.callout-warning}
## Careful
Callout body.
:::

```{python}
#| label: fig-curve
#| fig-cap: "A rising line"
plt.plot([0, 1], [0, 1]);
```

```{python}
#| include: false
assert SECRET == "hidden-setup-code", "hidden-assert-message"
```
"""
CHAPTER_TWO = """# Two {#sec-two}

Back to @sec-one and @fig-curve [@doe2020x].

```{python}
print("visible-output")
```
"""


def make_book(root: Path, chapters: dict[str, str]) -> Path:
    (root / "chapters").mkdir(parents=True)
    (root / "_quarto.yml").write_text(MINI_CONFIG)
    (root / "index.qmd").write_text("# Preface {.unnumbered}\n\nA mini book.\n")
    (root / "references.qmd").write_text("# References {.unnumbered}\n\n::: {#refs}\n:::\n")
    (root / "references.bib").write_text("@article{doe2020x,\n  author = {Doe, Jane},\n"
                                         "  title = {A Paper},\n  journal = {J},\n  year = {2020}\n}\n")
    for name, text in chapters.items():
        (root / "chapters" / name).write_text(text)
    return root


def test_notebooks_and_check_on_a_mini_book(tmp_path, capsys):
    root = make_book(tmp_path, {"01-one.qmd": CHAPTER_ONE, "02-two.qmd": CHAPTER_TWO})
    assert notebooks.notebook_problems(root) == ["missing notebooks/01-one.ipynb", "missing notebooks/02-two.ipynb"]
    notebooks.write_notebooks(root)
    assert "skipping chapters/03-missing.qmd" in capsys.readouterr().err
    written = (root / "notebooks" / "01-one.ipynb").read_bytes()
    (root / "notebooks" / "explore.ipynb").write_text("{}")     # hand-made: ignored
    assert notebooks.notebook_problems(root) == []
    notebooks.write_notebooks(root)
    assert (root / "notebooks" / "01-one.ipynb").read_bytes() == written
    (root / "chapters" / "01-one.qmd").write_text(CHAPTER_ONE + "\nMore text.\n")
    (root / "notebooks" / "99-old.ipynb").write_text("{}")
    assert notebooks.notebook_problems(root) == ["stale notebooks/01-one.ipynb", "extra notebooks/99-old.ipynb (no chapter makes it)"]


def test_a_book_without_preface_still_gets_an_index(tmp_path):
    root = make_book(tmp_path, {"02-two.qmd": CHAPTER_TWO.replace("@sec-one and @fig-curve", "nothing")})
    (root / "index.qmd").unlink()
    pages = fallback.load_book(root, notebooks.read_config(root))
    for page in pages:
        fallback.finish(page.nb)
    fallback_site.export_site(pages, "Mini", tmp_path / "site")
    index = (tmp_path / "site" / "index.html").read_text()
    assert "Mini" in index and 'href="chapters/02-two.html"' in index and "fallback build" in index


def test_fallback_build_makes_a_readable_site(tmp_path):
    root = make_book(tmp_path, {"01-one.qmd": CHAPTER_ONE, "02-two.qmd": CHAPTER_TWO})
    assert fallback.build_fallback(root) == 0
    site = root / "_book"
    one, two = (site / "chapters" / "01-one.html").read_text(), (site / "chapters" / "02-two.html").read_text()
    index = (site / "index.html").read_text()
    assert "Figure 1.1</strong>: A rising line" in one and "image/png" in one
    assert 'href="#cell-id=fig-curve">Figure 1.1</a>' in one
    assert 'href="01-one.html#cell-id=fig-curve">Figure 1.1</a>' in two
    assert "#|" not in one + two and "hidden-setup-code" not in one and "hidden-assert-message" not in one
    assert 'class="callout callout-warning"' in one and "Careful" in one and ":::" not in one
    assert "(<a href=\"#ref-doe2020x\">Doe 2020</a>)" in two and "Doe (<a" in one
    assert ">Chapter 1</a>" in two and "visible-output" in two and 'id="ref-doe2020x"' in two
    assert index.index('href="chapters/01-one.html"') < index.index('href="chapters/02-two.html"')
    assert "fallback build" in index and "03-missing" not in index
    assert "A Paper" in (site / "references.html").read_text()
    assert not (root / ".book-build").exists()


def test_fallback_pages_sit_where_quarto_puts_them(tmp_path):
    """index.html and references.html at the root, chapters/NN-name.html: a page loads site
    assets by the same relative URL in both builds; every link between pages still lands."""
    root = make_book(tmp_path, {"01-one.qmd": CHAPTER_ONE, "02-two.qmd": CHAPTER_TWO})
    notebooks.write_notebooks(root)
    assert fallback.build_fallback(root) == 0
    site = root / "_book"
    assert {p.relative_to(site).as_posix() for p in site.rglob("*.html")} == {
        "index.html", "chapters/01-one.html", "chapters/02-two.html", "references.html"}
    ids = {page.resolve(): set(re.findall(r'\bid="([^"]+)"', page.read_text())) for page in site.rglob("*.html")}
    anchors = 0
    for page in site.rglob("*.html"):
        text = page.read_text()
        links = [link for link in re.findall(r'(?:href|src)="([^"#?]+)[^"]*"', text) if not re.match(r"\w+:", link)]
        assert "../style.css" in links or page.parent == site
        assert [link for link in links if not (page.parent / link).exists()] == [], page.name
        for path, anchor in re.findall(r'href="([^"#:]*)#([^"]+)"', text):   # cross-references land
            target = (page.parent / path).resolve() if path else page.resolve()
            assert anchor in ids[target], f"{page.name}: {path}#{anchor}"
            anchors += 1
    assert anchors >= 4
    two = (site / "chapters" / "02-two.html").read_text()
    pager = re.search(r'<nav class="book-pager">(.*?)</nav>', two)[1]
    assert 'href="01-one.html"' in pager and 'href="../references.html"' in pager
    assert 'class="book-nav"><a href="../index.html"' in two


def test_fallback_chapters_link_their_notebook_and_source(tmp_path):
    root = make_book(tmp_path, {"01-one.qmd": CHAPTER_ONE, "02-two.qmd": CHAPTER_TWO})
    notebooks.write_notebooks(root)
    assert fallback.build_fallback(root) == 0
    site = root / "_book"
    for name in ("01-one", "02-two"):
        page = (site / "chapters" / f"{name}.html").read_text()
        downloads = re.search(r'<p class="downloads">(.*?)</p>', page)[1]
        anchors = [set(re.findall(r'([\w-]+)="([^"]*)"', a)) for a in re.findall(r"<a ([^>]*)>", downloads)]
        assert anchors == [{("href", f"../notebooks/{name}.ipynb"), ("download", "")},
                           {("href", f"{name}.qmd"), ("download", "")}]
        assert page.index("</h1>") < page.index('class="downloads"') < page.index("<h2")  # under the title
        assert (site / "notebooks" / f"{name}.ipynb").read_bytes() == (root / "notebooks" / f"{name}.ipynb").read_bytes()
        assert (site / "chapters" / f"{name}.qmd").read_text() == (root / "chapters" / f"{name}.qmd").read_text()
    two = (site / "chapters" / "02-two.html").read_text()
    assert two.index('class="downloads"') < two.index("Back to"), "right under the title, before the prose"
    assert 'class="downloads"' not in (site / "index.html").read_text()


def test_fallback_runs_post_render_scripts_like_quarto(tmp_path):
    root = make_book(tmp_path, {"02-two.qmd": CHAPTER_TWO})
    (root / "tools").mkdir()
    (root / "tools" / "assets.py").write_text(
        "import os, sys, pathlib\n"
        "site = pathlib.Path(os.environ['QUARTO_PROJECT_OUTPUT_DIR'])\n"
        "assert (site / 'chapters' / '02-two.html').exists(), 'pages come first'\n"
        "(site / 'explorer').mkdir()\n"
        "(site / 'explorer' / 'made.txt').write_text(f'{os.getcwd()} {sys.argv[1:]}')\n")
    config = MINI_CONFIG.replace("output-dir: _book,", "output-dir: _book, post-render: tools/assets.py --x,")
    assert config != MINI_CONFIG
    (root / "_quarto.yml").write_text(config)
    assert fallback.build_fallback(root) == 0
    assert (root / "_book" / "explorer" / "made.txt").read_text() == f"{root} ['--x']"
    assert (root / "_book" / "chapters" / "02-two.html").exists()
    (root / "tools" / "assets.py").write_text("raise SystemExit('no assets')\n")
    assert fallback.build_fallback(root) == 1
    assert (root / "_book" / "explorer" / "made.txt").exists(), "a failed build leaves the old site"


def test_fallback_build_fails_on_a_failing_chapter(tmp_path, capsys):
    broken = CHAPTER_TWO + "\n```{python}\n#| include: false\nassert 2 + 2 == 5, 'the prose is wrong'\n```\n"
    root = make_book(tmp_path, {"02-two.qmd": broken})
    assert fallback.build_fallback(root) == 1
    err = capsys.readouterr().err
    assert "02-two" in err and "the prose is wrong" in err and "AssertionError" in err
    assert not (root / "_book").exists()
