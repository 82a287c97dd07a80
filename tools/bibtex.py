"""references.bib for the fallback build: a small BibTeX reader and author-date labels.

Enough BibTeX for the book's entries (braced or quoted values, accents, $\\beta$, `and`-separated
authors); Quarto itself uses citeproc and never reads this.
"""
from __future__ import annotations

import html
import re
import unicodedata


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
