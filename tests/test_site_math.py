"""The fallback site's formulas: every display equation of every chapter reaches the HTML as the
TeX it was written as, and MathJax (copied into the site from jupyter-server-mathjax) typesets
it from disk with no network, in headless Chromium.

The site here is the real book exported without executing it: the maths is all in the markdown.
"""
from __future__ import annotations

import html
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import fallback  # noqa: E402
import fallback_site  # noqa: E402
import notebooks  # noqa: E402
import qmd  # noqa: E402
from nbconvert.filters.markdown_mistune import markdown2html_mistune  # noqa: E402

CHAPTERS = notebooks.chapters(ROOT)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The book's pages, not executed, exported as the fallback exports them."""
    out = tmp_path_factory.mktemp("book") / "site"
    pages = fallback.load_book(ROOT, notebooks.read_config(ROOT))
    for page in pages:
        fallback.finish(page.nb)
    fallback_site.export_site(pages, "Book", out)
    return out


def written_equations(page: notebooks.Page) -> list[str]:
    """A chapter's display equations as its author wrote them, with the \\tag the fallback
    gives a labelled one (Quarto's number: chapter.k), whitespace normalised."""
    nb = notebooks.to_notebook(page.src.read_text())
    text = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    text = qmd.FENCED.sub("", text)          # a $$ inside a code block in the prose is not maths
    out, k = [], 0
    for tex, label in re.findall(r"\$\$(.*?)\$\$([ \t]*\{#eq-[\w:-]+\})?", text, re.S):
        if label:
            k += 1
            tex += f" \\tag{{{page.number}.{k}}}"
        out.append(" ".join(tex.split()))
    return out


def test_the_book_has_display_equations_to_check():
    assert sum(len(written_equations(p)) for p in CHAPTERS) >= 50


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.src.stem)
def test_every_display_equation_reaches_the_fallback_html_intact(site, page):
    """Same TeX, same order, each in one piece: no list, paragraph or other tag inside it, and
    escaped exactly once (the browser's decoding gives back the TeX)."""
    raw = re.sub(r"(?s)<script.*?</script>", "", (site / page.href).read_text())  # MathJax's config
    found = re.findall(r"\$\$(.*?)\$\$", raw, re.S)
    assert [m for m in found if "<" in m] == [], "an equation was broken up by markdown"
    assert [" ".join(html.unescape(m).split()) for m in found] == written_equations(page)


def test_equations_whose_lines_start_like_lists_stay_maths():
    page, labels = notebooks.Page(Path("chapters/05-vae.qmd"), "5", name="chapters/05-vae.qmd"), {}
    tex = "\\ell = a\n+ b_1 * c_2 * d\n- 1 < x & y\n1. z"
    md = qmd.number_equations(f"The loss is\n\n$$\n{tex}\n$$ {{#eq-l}}\n\nand\n$$\n+ x\n$$\n", page, labels)
    out = markdown2html_mistune(md)
    assert "<li>" not in out and "<em>" not in out and "{#eq-l}" not in out
    found = [html.unescape(m) for m in re.findall(r"\$\$(.*?)\$\$", out, re.S)]
    assert found == [f"{tex} \\tag{{5.1}}", "+ x"]
    assert labels["eq-l"] == ("Equation (5.1)", "chapters/05-vae.html#eq-l") and 'id="eq-l"' in out


def test_pages_load_mathjax_from_the_site(site):
    """Each page points at the copy in site/mathjax/, by a path relative to itself."""
    for page in [site / "index.html", site / "chapters" / "05-vae.html"]:
        src = re.search(r'<script src="([^"]*MathJax\.js)\?config=([\w,-]+)"', page.read_text())
        assert src, page.name
        assert (page.parent / src[1]).resolve() == (site / "mathjax" / "MathJax.js").resolve()
        assert (site / "mathjax" / "config" / f"{src[2].split(',')[0]}.js").is_file()
        assert not re.search(r'<(script|link)[^>]* (src|href)="https?:', page.read_text()), "loads from the network"


@pytest.fixture(scope="module")
def browser():
    chromium = pytest.importorskip("vaebook.explore.chromium")
    if chromium.find_chromium() is None:
        pytest.skip("no Chromium found (Debian: apt-get install chromium, or set VAEBOOK_CHROMIUM); "
                    ".ci/run installs it")
    with chromium.Chromium(width=1100, height=900, timeout=120) as b:
        yield b


TYPESET = """new Promise((done, fail) => {
  const start = Date.now();
  const wait = () => window.MathJax && MathJax.isReady ? MathJax.Hub.Queue(() => done(true))
    : Date.now() - start > 60000 ? fail(new Error("MathJax never started")) : setTimeout(wait, 100);
  wait();
})"""
RESULT = """(() => ({
  display: document.querySelectorAll('script[type="math/tex; mode=display"]').length,
  shown: document.querySelectorAll('.MathJax_Display').length,
  inline: document.querySelectorAll('script[type="math/tex"]').length,
  errors: document.querySelectorAll('.merror, .MathJax_Error').length
          + (document.body.innerText.includes('Math Processing Error') ? 1 : 0),
  dollars: (document.body.innerText.match(/\\$\\$/g) || []).length,
  font: MathJax.OutputJax['HTML-CSS'].fontInUse,
  webfonts: !!MathJax.OutputJax['HTML-CSS'].webFonts && !MathJax.OutputJax['HTML-CSS'].imgFonts,
}))()"""


def test_mathjax_typesets_a_chapter_from_disk_offline(site, browser):
    page = next(p for p in CHAPTERS if p.src.stem == "05-vae")
    browser.send("Network.enable", session=True)
    browser.events = []
    browser.open((site / page.href).as_uri())
    browser.evaluate(TYPESET)
    result = browser.evaluate(RESULT)
    n = len(written_equations(page))
    assert result["display"] == result["shown"] == n, result
    assert result["inline"] >= 50 and result["errors"] == 0 and result["dollars"] == 0, result
    assert result["font"] == "STIX-Web" and result["webfonts"], result   # the copied fonts, not a fallback
    requests = {e["params"]["requestId"]: e["params"]["request"]["url"] for e in browser.events
                if e.get("method") == "Network.requestWillBeSent"}
    assert all(url.startswith(("file:", "data:", "about:")) for url in requests.values()), \
        [u for u in requests.values() if not u.startswith(("file:", "data:", "about:"))]
    failed = [requests.get(e["params"]["requestId"], "?") for e in browser.events
              if e.get("method") == "Network.loadingFailed"]
    # MathJax probes two TeX fonts for its NativeMML output, which the package does not ship and
    # the pages do not use; anything else missing is a file the copy left out
    assert [u for u in failed if u != "about:blank" and "/fonts/HTML-CSS/TeX/otf/" not in u] == []
    assert browser.errors() == []


# ------------------------------------------------------------------------- the Quarto site
def quarto_math(path: Path) -> dict:
    import yaml
    return yaml.safe_load(path.read_text())["format"]["html"]


@pytest.mark.parametrize("settings, page", [("_quarto.yml", "index.html"),
                                            ("chapters/_metadata.yml", "chapters/05-vae.html")])
def test_quarto_pages_load_the_mathjax_copied_into_the_site(tmp_path, settings, page):
    """html-math-method points each page, by a URL relative to it, at site/mathjax/, with the
    fallback's configuration; the post-render step puts MathJax there."""
    math = quarto_math(ROOT / settings)["html-math-method"]
    assert math["method"] == "mathjax"
    url, config = math["url"].split("?config=")
    site = tmp_path / "site"
    assert ((site / page).parent / url).resolve() == (site / "mathjax" / "MathJax.js").resolve()
    assert config == f"{fallback_site.MATHJAX_CONFIG},Safe"
    header = quarto_math(ROOT / "_quarto.yml")["include-in-header"]
    assert (ROOT / header).read_text() == fallback_site.MATHJAX_SETTINGS and "STIX-Web" in fallback_site.MATHJAX_SETTINGS
    fallback_site.copy_mathjax(site)
    fallback_site.copy_mathjax(site)                       # again, over the copy: both builds do
    assert (site / "mathjax" / "config" / f"{fallback_site.MATHJAX_CONFIG}.js").is_file()
