"""Markdown -> sanitised HTML with stable heading anchors, a table of contents and glossary <abbr>."""

from __future__ import annotations

import hashlib
import logging
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import markdown
import nh3
from markdown.extensions import Extension
from markdown.extensions.abbr import AbbrExtension, AbbrTreeprocessor
from markdown.extensions.toc import slugify as _markdown_slugify
from markdown.treeprocessors import Treeprocessor
from markdown.util import AtomicString

from kb.content.glossary import Glossary
from kb.content.outline import TOC_LEVELS
from kb.errors import RenderError

log = logging.getLogger(__name__)

# Ids the page around a guide uses (kb/web/templates): a guide element with one of them would
# capture the page's own links and scripts (the #feedback anchor after posting, the search box #q).
# tests/test_render.py checks this list against the templates.
PAGE_IDS = frozenset(
    {
        "answer-heading",
        "cat-heading",
        "did-you-mean-slot",
        "error-q",
        "error-q-list",
        "error-q-msg",
        "error-q-panel",
        "error-search",
        "f-category",
        "f-tag",
        "feedback",
        "feedback-comment",
        "feedback-heading",
        "guide-body",
        "guide-title",
        "hero-form",
        "hero-heading",
        "hero-q",
        "hero-q-list",
        "hero-q-msg",
        "hero-q-panel",
        "live-status",
        "main",
        "page-q",
        "page-q-list",
        "page-q-msg",
        "page-q-panel",
        "q",
        "q-list",
        "q-msg",
        "q-panel",
        "recent-heading",
        "related-heading",
        "report-days",
        "report-feedback",
        "report-never",
        "report-no-click",
        "report-top",
        "report-unanswered",
        "report-zero",
        "result-count",
        "results",
        "results-heading",
        "search-form",
        "search-heading",
        "search-page-form",
        "search-results",
        "sources-heading",
        "theme-toggle",
        "toc-title",
    }
)
# Seconds one render may take. The limits kb.content.guide checks first keep the worst guide they allow
# to about two seconds (benchmarks/bench_hostile_guides.py); the budget is the backstop for a pattern
# they miss, so a page answers 503 instead of holding a worker until it is killed.
RENDER_BUDGET_SECONDS = 5.0
# The fix a contributor is offered when a guide cannot be rendered (the build and the checker).
RENDER_HINT = "simplify the Markdown: fewer lists and quotes inside one another, fewer brackets inside brackets"
# A guide that failed is refused at once for this long, so each visit does not pay the budget again.
FAILURE_MEMORY_SECONDS = 300.0
_failed: dict[str, tuple[float, str]] = {}

EXTENSIONS = ["toc", "tables", "fenced_code", "footnotes", "admonition", "sane_lists", "attr_list"]  # and _Abbr, below

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


def _filter_attribute(tag: str, attr: str, value: str) -> str | None:
    """Drop an id the page itself uses and classes outside the allowlist."""
    if attr == "id":  # raw HTML ids; Markdown ones were renamed by _PageIdGuard
        return None if value in PAGE_IDS else value
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
        attribute_filter=_filter_attribute,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def slugify(value: str, separator: str) -> str:
    """Python-Markdown's toc slugify, steering clear of the page's own ids ('Feedback' -> 'feedback-section')."""
    slug = _markdown_slugify(value, separator)
    return f"{slug}{separator}section" if slug in PAGE_IDS else slug


class _PageIdGuard(Treeprocessor):
    """Renames an id an author set with attr_list (`{: #feedback}`) that the page itself uses.

    Runs after attr_list sets ids and before toc collects heading anchors, so the table of
    contents, the chunker and the page all see the same renamed anchor.
    """

    def run(self, root) -> None:
        for el in root.iter():
            if el.get("id") in PAGE_IDS:
                el.set("id", f"{el.get('id')}-section")


class _PageIdExtension(Extension):
    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 - Python-Markdown's API
        md.treeprocessors.register(_PageIdGuard(md), "page-ids", 6)


class _LinearAbbrTreeprocessor(AbbrTreeprocessor):
    """Python-Markdown's abbreviation pass with the same output, in linear time.

    The original finds each element's place among its siblings with `list(parent).index(el)`,
    which is quadratic in the number of siblings: a guide of 25,000 table cells took 23 s.
    Here the caller passes the index down (siblings after it are done first, so it stays valid).
    """

    def iter_element(self, el, parent=None, index: int = 0) -> None:
        for i in range(len(el) - 1, -1, -1):
            self.iter_element(el[i], el, i)
        if text := el.text:
            if not isinstance(text, AtomicString):
                for m in reversed(list(self.RE.finditer(text))):
                    if self.abbrs[m.group(0)]:
                        el.insert(0, self.create_element(self.abbrs[m.group(0)], m.group(0), text[m.end() :]))
                        text = text[: m.start()]
                el.text = text
        if parent is not None and el.tail:
            tail = el.tail
            if not isinstance(tail, AtomicString):
                for m in reversed(list(self.RE.finditer(tail))):
                    if self.abbrs[m.group(0)]:
                        parent.insert(
                            index + 1, self.create_element(self.abbrs[m.group(0)], m.group(0), tail[m.end() :])
                        )
                        tail = tail[: m.start()]
                el.tail = tail


class _Abbr(AbbrExtension):
    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 - Python-Markdown's API
        super().extendMarkdown(md)
        md.treeprocessors.register(_LinearAbbrTreeprocessor(md, self.abbrs), "abbr", 7)  # replaces the original


def _toc(tokens: list[dict]) -> tuple[TocEntry, ...]:
    return tuple(TocEntry(t["level"], t["id"], t["name"], _toc(t.get("children", []))) for t in tokens)


def _flatten(entries: tuple[TocEntry, ...]) -> list[tuple[int, str, str]]:
    out = []
    for e in entries:
        out.append((e.level, e.anchor, e.title))
        out.extend(_flatten(e.children))
    return out


class _BudgetSpent(BaseException):
    """Raised inside a render whose time is up; a BaseException so no `except Exception` in a library swallows it."""


@contextmanager
def _time_budget(seconds: float | None) -> Iterator[None]:
    """Raise _BudgetSpent in the block after `seconds` of wall time.

    A SIGALRM timer, so only in the main thread with no other timer running: the CLI tools, the
    tests and gunicorn's sync workers. Elsewhere (a threaded development server) only the limits
    kb.content.guide checks bound the time.
    """
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
    )
    if not usable:
        yield
        return

    def expired(signum, frame):
        raise _BudgetSpent

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:  # even when the alarm fires on the way out
            signal.signal(signal.SIGALRM, previous)


def render_markdown(
    text: str, glossary: Glossary | None = None, *, budget: float | None = RENDER_BUDGET_SECONDS
) -> Rendered:
    """Render guide markdown to safe HTML.

    Headings get ids from Python-Markdown's toc slugify (the anchors the chunker and links use);
    glossary acronyms become `<abbr title="expansion">`.

    Raises:
        RenderError: The Markdown nests too deeply for the renderer, or rendering took longer than
            `budget` seconds (None: no budget). The same text is then refused at once for a while.
    """
    source = text
    if glossary is not None:
        defs = "\n".join(f"*[{name}]: {title}" for name, title in glossary.abbreviations())
        source = f"{text}\n\n{defs}\n"
    key = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
    failed = _failed.get(key)
    if failed is not None and time.monotonic() - failed[0] < FAILURE_MEMORY_SECONDS:
        raise RenderError(failed[1])
    md = markdown.Markdown(
        extensions=[*EXTENSIONS, _Abbr(), _PageIdExtension()],
        extension_configs={"toc": {"slugify": slugify, "toc_depth": f"{TOC_LEVELS[0]}-{TOC_LEVELS[1]}"}},
        output_format="html",
    )
    started = time.monotonic()
    try:
        with _time_budget(budget):
            html = md.convert(source)
            toc = _toc(getattr(md, "toc_tokens", []))
            rendered = Rendered(sanitise(html), toc, tuple(_flatten(toc)))
    except RecursionError:
        reason = (
            "this guide cannot be shown: its Markdown is nested too deeply "
            "(lists, quotes or brackets inside one another)"
        )
    except _BudgetSpent:
        reason = f"this guide cannot be shown: turning its Markdown into a page took more than {budget:g} seconds"
    else:
        return rendered
    log.warning("could not render a guide (%s) after %.1f s", reason, time.monotonic() - started)
    if len(_failed) > 256:
        _failed.clear()
    _failed[key] = (time.monotonic(), reason)
    raise RenderError(reason)


def heading_anchor(text: str) -> str:
    """The anchor a heading gets (before de-duplication)."""
    return slugify(text, "-")
