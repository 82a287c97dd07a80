"""The fallback site's callouts: a callout that holds code cells holds them in the page too.

nbconvert gives every cell an element of its own, so a <details> opened inside one markdown
cell's element would end at that element's end, and the code cells after it would show, out of
the box. tools/fallback.py puts each tag that opens or closes a div in a raw cell of its own,
and tools/fallback_site.py writes those between the cells' elements.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup    # nbconvert's own dependency

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import fallback  # noqa: E402
import qmd  # noqa: E402

CONFIG = """project: {type: book, output-dir: _book}
book:
  title: Mini
  chapters: [index.qmd, chapters/01-one.qmd]
"""
CHAPTER = """# One

Before the box.

::: {.callout-note collapse="true"}
## Going deeper: inside

Text above the code.

```{python}
print("inside-output")
```

::: {.inner-div}
Nested text.
:::

Text below the code.

```{python}
#| code-fold: true
print("folded-output")
```
:::

::: {.callout-tip collapse="true" title="Solution"}
```{python}
print("solution-output")
```
:::

::: {.callout-warning}
## Open box

```{python}
print("open-box-output")
```
:::

After the boxes.

```{python}
print("outside-output")
```
"""


@pytest.fixture(scope="module")
def chapter_file(tmp_path_factory) -> Path:
    """The mini book built by the fallback, its chapter executed: the chapter's page."""
    root = tmp_path_factory.mktemp("book")
    (root / "chapters").mkdir()
    (root / "_quarto.yml").write_text(CONFIG)
    (root / "index.qmd").write_text("# Preface {.unnumbered}\n\nA mini book.\n")
    (root / "chapters" / "01-one.qmd").write_text(CHAPTER)
    assert fallback.build_fallback(root) == 0
    return root / "_book" / "chapters" / "01-one.html"


@pytest.fixture(scope="module")
def chapter(chapter_file) -> BeautifulSoup:
    """The page parsed as a browser would parse it here: a closing tag closes every element
    opened after its own opening tag (a <details> left open in a cell's <div> ends with it)."""
    return BeautifulSoup(chapter_file.read_text(), "html.parser")


def box_of(page: BeautifulSoup, text: str):
    """The callout around the element that shows `text`, or None."""
    element = page.find(string=lambda s: s and text in s)
    assert element is not None, f"{text} is not on the page"
    return element.find_parent(class_="callout")


def test_a_collapsed_callout_holds_its_code_cells_and_their_outputs(chapter):
    box = box_of(chapter, "inside-output")
    assert box is not None and box.name == "details" and "open" not in box.attrs
    assert box.summary.get_text(strip=True) == "Going deeper: inside"
    code = [c for c in box.find_all(class_="jp-CodeCell")]
    assert [c.find(class_="jp-OutputArea").get_text(strip=True) for c in code] == \
        ["inside-output", "folded-output"]
    for text in ["Text above the code.", "Nested text.", "Text below the code."]:
        assert box_of(chapter, text) is box, text
    assert box.find(class_="inner-div").get_text(strip=True) == "Nested text."
    assert box.find("details", class_="code-fold") is not None     # the folded cell's code


def test_a_solution_box_titled_by_its_attribute_holds_its_code(chapter):
    box = box_of(chapter, "solution-output")
    assert box.name == "details" and "open" not in box.attrs
    assert box.summary.get_text(strip=True) == "Solution"


def test_an_open_callout_holds_its_code_and_the_rest_stays_outside(chapter):
    box = box_of(chapter, "open-box-output")
    assert box.name == "div" and "callout-warning" in box["class"]
    assert box.find(class_="callout-title").get_text(strip=True) == "Open box"
    for text in ["Before the box.", "After the boxes.", "outside-output"]:
        assert box_of(chapter, text) is None, text
    assert ":::" not in chapter.get_text()


def test_div_pieces_carry_an_open_div_from_cell_to_cell():
    stack = []
    first = qmd.div_pieces('Intro\n\n::: {.callout-note collapse="true"}\n## Why?\n\nBecause\n', stack)
    assert [kind for kind, _ in first] == ["markdown", "html", "markdown"]
    assert first[1][1] == ('<details class="callout callout-note">\n'
                           '<summary class="callout-title">Why?</summary>')
    assert stack == ["</details>"]
    assert qmd.div_pieces("after the code\n:::\nout", stack) == [
        ("markdown", "after the code"), ("html", "</details>"), ("markdown", "out")]
    assert stack == []
    assert qmd.div_pieces(":::\nstray", stack) == [("markdown", "stray")]   # a stray closer
    assert qmd.div_pieces("```\n:::\n```", stack) == [("markdown", "```\n:::\n```")]   # code


@pytest.fixture(scope="module")
def browser():
    chromium = pytest.importorskip("vaebook.explore.chromium")
    if chromium.find_chromium() is None:
        pytest.skip("no Chromium found (Debian: apt-get install chromium, or set VAEBOOK_CHROMIUM)")
    with chromium.Chromium(width=1100, height=900, timeout=120) as b:
        yield b


SHOWN = """(() => {
  const shown = text => [...document.querySelectorAll('.jp-Cell')].some(
    c => c.textContent.includes(text) && c.checkVisibility());
  return Object.fromEntries(%s.map(t => [t, shown(t)]));
})()"""


def test_the_browser_hides_a_collapsed_callouts_code_until_opened(chapter_file, browser):
    browser.open(chapter_file.as_uri())
    texts = ["inside-output", "Text below the code.", "solution-output", "open-box-output",
             "outside-output"]
    shown = browser.evaluate(SHOWN % texts)
    assert shown == {"inside-output": False, "Text below the code.": False, "solution-output": False,
                     "open-box-output": True, "outside-output": True}
    browser.evaluate("document.querySelectorAll('details.callout').forEach(d => d.open = true)")
    assert all(browser.evaluate(SHOWN % texts).values())
