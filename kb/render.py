"""Markdown -> sanitised HTML with stable heading anchors, a table of contents and glossary <abbr>."""

from __future__ import annotations

import re
from dataclasses import dataclass

import markdown
import nh3
from markdown.extensions.toc import slugify

from kb.glossary import Glossary

EXTENSIONS = ["toc", "tables", "fenced_code", "footnotes", "admonition", "abbr", "sane_lists", "attr_list"]

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "dd",
    "del",
    "details",
    "div",
    "dl",
    "dt",
    "em",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "kbd",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "span",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "*": {"id", "class", "title"},
    "a": {"href"},
    # no width/height: an image sized by the author could stretch the page far beyond the screen
    "img": {"src", "alt"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan", "scope"},
    "ol": {"start"},
}
URL_SCHEMES = {"https", "http", "mailto"}
ALLOWED_CLASSES = re.compile(
    r"^(admonition|admonition-title|note|tip|warning|danger|important|footnote|footnote-ref|footnote-backref|codehilite|language-[a-z0-9+-]+|toclink)$"
)


@dataclass(frozen=True)
class TocEntry:
    level: int
    anchor: str
    title: str
    children: tuple[TocEntry, ...] = ()


@dataclass(frozen=True)
class Rendered:
    html: str
    toc: tuple[TocEntry, ...]
    headings: tuple[tuple[int, str, str], ...]  # (level, anchor, text) in document order


def _clean_class(tag: str, attr: str, value: str) -> str | None:
    if attr != "class":
        return value
    kept = [c for c in value.split() if ALLOWED_CLASSES.match(c)]
    return " ".join(kept) or None


def sanitise(html: str) -> str:
    """Allowlist sanitiser: no script, no event handlers, no javascript:/data: URLs, no styles."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        attribute_filter=_clean_class,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def _toc(tokens: list[dict]) -> tuple[TocEntry, ...]:
    return tuple(TocEntry(t["level"], t["id"], t["name"], _toc(t.get("children", []))) for t in tokens)


def _flatten(entries: tuple[TocEntry, ...]) -> list[tuple[int, str, str]]:
    out = []
    for e in entries:
        out.append((e.level, e.anchor, e.title))
        out.extend(_flatten(e.children))
    return out


def render_markdown(text: str, glossary: Glossary | None = None) -> Rendered:
    """Render guide markdown to safe HTML.

    Headings get ids from Python-Markdown's toc slugify (the anchors the chunker and links use);
    glossary acronyms become `<abbr title="expansion">`.
    """
    md = markdown.Markdown(
        extensions=EXTENSIONS,
        extension_configs={"toc": {"slugify": slugify, "toc_depth": "2-4"}},
        output_format="html",
    )
    source = text
    if glossary is not None:
        defs = "\n".join(f"*[{name}]: {title}" for name, title in glossary.abbreviations())
        source = f"{text}\n\n{defs}\n"
    html = md.convert(source)
    toc = _toc(getattr(md, "toc_tokens", []))
    return Rendered(sanitise(html), toc, tuple(_flatten(toc)))


def heading_anchor(text: str) -> str:
    """The anchor Python-Markdown gives a heading (before de-duplication)."""
    return slugify(text, "-")
