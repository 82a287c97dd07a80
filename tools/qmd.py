"""Quarto markdown -> the plain markdown that nbconvert renders, for the fallback build.

Each pass does one thing Quarto would: callouts and fenced divs, numbered headings, numbered
display equations, cross-references and citations, images embedded in the page. Every pass
leaves code blocks and maths alone (`outside`).
"""
from __future__ import annotations

import base64
import functools
import html
import mimetypes
import posixpath
import re
import sys
from pathlib import Path

from bibtex import cite_label

FENCED = re.compile(r"^(`{3,}|~{3,})[^\n]*\n.*?^\1[ \t]*$", re.M | re.S)
CODE_OR_MATH = re.compile(r"(`{3,}).*?\1|\$\$.*?\$\$|`[^`\n]+`|\$[^$\n]+\$", re.S)
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)(?:[ \t]+\{([^}]*)\})?[ \t]*$", re.M)
DISPLAY_MATH = re.compile(r"^[ \t]*\$\$(.*?)\$\$[ \t]*(?:\{#(eq-[\w:-]+)\})?[ \t]*$", re.M | re.S)
DIV_OPEN = re.compile(r"^:{3,}\s*(?:\{([^}]*)\}|([\w-]+))\s*$")
XREF = re.compile(r"(?<![\w@])@((?:fig|tbl|eq|sec)-[\w:-]*\w)")
BRACKET_CITE = re.compile(r"\[([^\[\]]*?-?@[^\[\]]*?)\](?!\()")
CITE = re.compile(r"^(|.*?\s)(-?)@([\w:.-]*\w)\s*,?\s*(.*)$", re.S)
INTEXT_CITE = re.compile(r"(?<![\w@/.])@([A-Za-z_][\w:.-]*\w)")
QMD_LINK = re.compile(r"\]\(((?:(?!://)[^()\s])*?)\.qmd(#[^()\s]*)?\)")
REFS_MARKER = "<!-- the book's references -->"


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


def relative_url(target: str, here: str) -> str:
    """A link from page `here` to `target`, both site-relative: ('chapters/a.html#x', 'index.html')."""
    path, _, fragment = target.partition("#")
    fragment = f"#{fragment}" if fragment else ""
    if path == here:
        return fragment or posixpath.basename(path)
    return posixpath.relpath(path, posixpath.dirname(here) or ".") + fragment


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


def div_pieces(md: str, stack: list[str]) -> list[tuple[str, str]]:
    """Pandoc fenced divs -> ("html", the tags that open or close a div) and ("markdown", the
    text between), in order: callouts become titled boxes, <details> when collapsible. `stack`
    holds the closing tags of the divs still open; pass the same list for every markdown cell of
    a page, so that a div may hold code cells (the fallback puts each "html" piece in a cell of
    its own, and closes what the stack holds at the page's end)."""
    pieces, text, pending, in_code = [], [], None, False

    def html_piece(lines):
        pieces.extend([("markdown", "\n".join(text))] if "".join(text).strip() else [])
        pieces.append(("html", "\n".join(lines)))
        text.clear()

    def add_title(title_html):               # to the opening tag, the last piece
        tag = "summary" if stack[-1] == "</details>" else "div"
        pieces[-1] = ("html", f'{pieces[-1][1]}\n<{tag} class="callout-title">{title_html}</{tag}>')

    for line in md.split("\n"):
        in_code ^= bool(re.match(r"(```|~~~)", line))
        if pending and line.strip():         # a callout's title: its first line when a heading
            title = re.match(r"#{1,6}\s+(.*)", line)
            add_title(inline_html(title[1]) if title else pending)
            pending = None
            if title:
                continue
        opening = None if in_code else DIV_OPEN.match(line)
        if opening:
            lines, closer, pending = open_div(opening[1] or "." + opening[2])
            if closer:
                html_piece(lines)
            else:                            # a placeholder (the references), not a box
                text.extend(["", *lines, ""])
            stack.append(closer)
        elif not in_code and re.match(r"^:{3,}\s*$", line):
            closer = stack.pop() if stack else ""      # a stray closer is dropped
            if closer:
                html_piece([closer])
        else:
            text.append(line)
    if pending:                              # a callout that opens right before a code cell
        add_title(pending)
    return pieces + ([("markdown", "\n".join(text))] if "".join(text).strip() else [])


def render_divs(md: str) -> str:
    """div_pieces of one text, as one text: what is left open closes at its end."""
    stack: list[str] = []
    pieces = div_pieces(md, stack) + [("html", closer) for closer in stack[::-1]]
    return "\n\n".join(text for _, text in pieces if text)


def number_headings(md: str, page, labels: dict) -> str:
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


def number_equations(md: str, page, labels: dict) -> str:
    """Every display equation `$$ ... $$` (numbered when `{#eq-x}` follows: \\tag{3.1} and an
    anchor) -> an HTML block that markdown leaves alone, so a line of TeX that starts with `+`,
    `-` or `1.` stays maths instead of turning into a list. The TeX is HTML-escaped; MathJax
    reads the text the browser decodes, so it sees the TeX as written."""
    def equation(m):
        tex, ident = m[1].strip("\n"), m[2]
        if ident:
            number = page.numbered("eq")
            labels[ident] = (f"Equation ({number})", f"{page.href}#{ident}")
            tex = f"{tex.rstrip()} \\tag{{{number}}}"
        anchor = f' id="{ident}"' if ident else ""
        return f'\n<div class="math display"{anchor}>\n$${html.escape(tex, quote=False)}$$\n</div>\n'
    return outside(FENCED, md, lambda s: DISPLAY_MATH.sub(equation, s))


def resolve_references(md: str, labels: dict, bib: dict, cited: list, here: str = "") -> str:
    """@fig-x -> a link 'Figure 1.1'; [@key] -> '(Author Year)'; @key -> 'Author (Year)'.
    Links are relative to the page `here` (its site path, e.g. 'chapters/01-x.html')."""
    def xref(m):
        if m[1] not in labels:
            warn(f"unresolved cross-reference @{m[1]}")
            return f"<strong>?@{m[1]}</strong>"
        return f'<a href="{relative_url(labels[m[1]][1], here)}">{labels[m[1]][0]}</a>'

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
        text = QMD_LINK.sub(r"](\1.html\2)", text)      # the site mirrors the sources' layout
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
