"""Content checks beyond the schema: structure, links, glossary, staleness and near-duplicate sections.

`check_content` = every problem `kb.content.guide.load_guides` finds (front matter, slugs, titles) plus
the checks below, each located as `path:line:col` with a hint on how to fix it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import difflib
import hashlib
import json
import logging
import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kb import clock
from kb.content.chunking import MAX_CHARS, plain_text, split_text
from kb.content.glossary import Glossary
from kb.content.guide import (
    FM_RE,
    LINK_RE,
    REF_DEF_RE,
    SCHEME_RE,
    Guide,
    Taxonomy,
    _key_line,
    guide_paths,
    is_home_page,
    limit_problems,
    load_guides,
    read_text,
)
from kb.content.outline import TOC_LEVELS, Outline, blank_spans, mask_markdown
from kb.content.render import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, PAGE_IDS, RENDER_HINT, URL_SCHEMES, render_markdown
from kb.engines.embedding_cache import EmbeddingCache, cache_name
from kb.errors import ContentError, KBError, Problem, RenderError

log = logging.getLogger(__name__)

# Cosine similarity (all-MiniLM-L6-v2, section text only) at or above which two sections of
# different guides are reported as near-duplicates. Calibrated on the real guides by
# benchmarks/calibrate_duplicates.py; the figures are in docs/BENCHMARKS.md.
DUPLICATE_THRESHOLD = 0.92
# Sections shorter than this (characters of plain text) are too generic to compare.
MIN_DUPLICATE_CHARS = 150

# All-capitals words every reader knows: the glossary check does not ask for entries for them.
EVERYDAY_ABBREVIATIONS = frozenset(
    {
        "UK",
        "US",
        "USA",
        "EU",
        "OK",
        "TV",
        "ID",
        "IT",
        "AI",
        "CV",
        "CVs",
        "FAQ",
        "FAQs",
        "PDF",
        "URL",
        "COVID",
        "BST",
        "GMT",
        "AM",
        "PM",
        "BBC",
        "DIY",
    }
)
CYCLE_RE = re.compile(r"^FP20\d\d$")
ROMAN_RE = re.compile(r"^[IVXLC]+$")
ACRONYM_RE = re.compile(r"(?<![\w-])([A-Z][A-Z0-9&]*[A-Z0-9])(s?)(?![\w-])")
INLINE_DEF_RE = re.compile(r"\(([A-Z][A-Z0-9&]*[A-Z0-9])s?\)")
HYPHENATED_RE = re.compile(r"(?<![\w-])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+(?![\w-])")

REF_USE_RE = re.compile(r"(?<![\]\\])\[([^\]\n]+)\]\[([^\]\n]*)\]")
ABBR_DEF_RE = re.compile(r"^\*\[([^\]\n]+)\]:", re.M)
AUTOLINK_RE = re.compile(r"<(https?://[^>\s]+)>")
HTTP_RE = re.compile(r"http://([^\s/)\]>\"'`]+)[^\s)\]>\"'`]*", re.I)
HTTPS_HOST_RE = re.compile(r"https://([^\s/)\]>\"'`:]+)", re.I)
PLACEHOLDER_RE = re.compile(r"\bTODO\b")
SITE_PAGES = ("/", "/guides", "/tags", "/search")
RAW_TAG_RE = re.compile(r"<([A-Za-z][A-Za-z0-9-]*)(?=[\s/>])((?:[^<>\"']|\"[^\"]*\"|'[^']*')*)/?>")
RAW_ATTR_RE = re.compile(r"([^\s=/>\"']+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?")
ATTR_LIST_RE = re.compile(r"\{:?([^{}\n]*)\}")
ATTR_LIST_ID_RE = re.compile(r"(?:^|\s)(?:#|id=[\"']?)([^\s\"'}]+)")

WEB_STATIC = Path(__file__).resolve().parents[1] / "web" / "static"


@dataclass(frozen=True)
class CheckOptions:
    """What to check and how strictly.

    Attributes:
        today: The date staleness and future dates are judged against (default: today).
        stale_after_days: A guide not reviewed for longer than this is stale.
        strict: Stale guides are errors instead of warnings.
        duplicates: Run the near-duplicate check (needs the embedding model).
        duplicate_threshold: Cosine similarity at or above which sections are near-duplicates.
    """

    today: dt.date | None = None
    stale_after_days: int = 365
    strict: bool = False
    duplicates: bool = True
    duplicate_threshold: float = DUPLICATE_THRESHOLD


@dataclass
class CheckReport:
    """Everything a check found. `problems` are sorted by path, line and column."""

    problems: list[Problem]
    guides: int
    scope: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(p.level == "error" for p in self.problems)

    @property
    def warnings(self) -> int:
        return sum(p.level == "warning" for p in self.problems)

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    def summary(self) -> str:
        checked = f"{len(self.scope)} of {self.guides} guides" if self.scope is not None else f"{self.guides} guides"
        verdict = "ready to merge" if not self.errors else "fix the errors above before merging"
        return f"Checked {checked}: {self.errors} error(s), {self.warnings} warning(s); {verdict}."

    def as_dict(self) -> dict:
        return {
            "ok": not self.errors,
            "errors": self.errors,
            "warnings": self.warnings,
            "guides": self.guides,
            "checked": self.scope,
            "notes": self.notes,
            "problems": [p.as_dict() for p in self.problems],
        }


# ---- source text helpers -------------------------------------------------------------------------
@dataclass
class Source:
    """One guide file as text, with its body masked for scanning (code and comments blanked out)."""

    path: Path
    shown: str
    slug: str
    text: str
    fm_text: str
    body: str
    body_line: int
    masked: str
    line_starts: list[int]
    outline: Outline  # headings with the page's anchors; a heading's body line index is its `index`
    anchors: set[str]
    unclosed_comment: int | None = None

    def position(self, offset: int) -> tuple[int, int]:
        """Body offset -> 1-based (file line, column)."""
        i = bisect.bisect_right(self.line_starts, offset) - 1
        return self.body_line + i, offset - self.line_starts[i] + 1


def read_source(path: Path, content_dir: Path, problems: list[Problem] | None = None) -> Source | None:
    """Read a guide file for the checks below; None when it cannot be checked.

    That is when it is unreadable, has no front matter or is over a limit (load_guides has
    reported why), or cannot be rendered (reported into `problems`, when given).
    """
    try:
        shown = str(path.relative_to(Path.cwd()))
    except ValueError:
        shown = str(path)
    text = read_text(path, shown, [], content_dir)
    if text is None:
        return None
    m = FM_RE.match(text)
    if not m:
        return None
    body = text[m.end() :]
    body_line = text[: m.end()].count("\n") + 1
    if limit_problems(body, body_line, shown):
        return None  # the checks below are only fast within the limits
    masked, unclosed = mask_markdown(body)
    line_starts = [0] + [i + 1 for i, ch in enumerate(body) if ch == "\n"]
    try:
        rendered = render_markdown(body)
    except RenderError as exc:
        if problems is not None:
            problems.append(Problem(shown, body_line, 1, "error", exc.message, RENDER_HINT, "body.render"))
        return None
    anchors = {a for _, a, _ in rendered.headings} | set(re.findall(r'\bid="([^"]+)"', rendered.html))
    outline = Outline.scan(body, body_line)
    outline, disagree = outline.anchored(rendered.headings, shown)
    if disagree is not None and problems is not None and not outline.refusals(shown):
        problems.append(disagree)  # the build would refuse the guide; load_guides has reported any refusal
    return Source(
        path,
        shown,
        path.stem,
        text,
        m.group(1) or "",
        body,
        body_line,
        masked,
        line_starts,
        outline,
        anchors,
        unclosed,
    )


# ---- the checks ----------------------------------------------------------------------------------
class _Found:
    """Collects problems for one file."""

    def __init__(self, src: Source):
        self.src = src
        self.items: list[Problem] = []

    def at(self, offset: int, level: str, message: str, hint: str, code: str) -> None:
        line, col = self.src.position(offset)
        self.items.append(Problem(self.src.shown, line, col, level, message, hint, code))

    def line(self, line: int, col: int, level: str, message: str, hint: str, code: str) -> None:
        self.items.append(Problem(self.src.shown, line, col, level, message, hint, code))


def check_structure(src: Source) -> list[Problem]:
    """Headings in order (## then ### ...), no empty sections, no leftover template prompts."""
    f = _Found(src)
    lines = src.masked.split("\n")
    if src.unclosed_comment is not None:
        f.at(
            src.unclosed_comment,
            "error",
            "unclosed HTML comment '<!--' hides the rest of the guide",
            "close it with '-->' or delete it",
            "structure.comment",
        )
    _check_headings(f, src, lines)
    for m in PLACEHOLDER_RE.finditer(src.masked):
        f.at(
            m.start(),
            "error",
            "template prompt 'TODO' left in the guide",
            "replace it with your own writing",
            "structure.placeholder",
        )
    for key in ("title", "summary"):
        if PLACEHOLDER_RE.search(_fm_value(src.fm_text, key)):
            f.line(
                _key_line(src.fm_text, key),
                1,
                "error",
                f"template prompt 'TODO' left in '{key}'",
                f"write the {key}",
                "structure.placeholder",
            )
    if PLACEHOLDER_RE.search(_fm_block(src.fm_text, "sources")):
        f.line(
            _key_line(src.fm_text, "sources"),
            1,
            "error",
            "template prompt 'TODO' left in 'sources'",
            "list the pages you checked the facts against",
            "structure.placeholder",
        )
    return f.items


def _check_headings(f: _Found, src: Source, lines: list[str]) -> None:
    """Levels in order, no empty or repeated headings, no empty sections (`lines`: the masked body).

    Levels deeper than the page anchors and underlined headings are load_guides' refusals (Outline.refusals).
    """
    previous = 1  # the guide title is the page's level-1 heading
    seen: dict[str, int] = {}
    sections = src.outline.sections()[1:]
    for n, (heading, start, end) in enumerate(sections):
        level, text, offset = heading.level, heading.text, src.line_starts[heading.index]
        if level == 1:
            f.at(
                offset,
                "error",
                "level-1 heading in the body: the title is the page's only '#' heading",
                "start sections at '## '",
                "structure.h1",
            )
        elif previous + 1 < level <= TOC_LEVELS[1]:
            f.at(
                offset,
                "error",
                f"heading jumps from level {previous} to level {level}",
                f"use {'#' * (previous + 1)} here, or add the missing level above it",
                "structure.heading-order",
            )
        if not text:
            f.at(offset, "error", "empty heading", "write the question this section answers", "structure.empty-heading")
        elif text.casefold() in seen:
            f.at(
                offset,
                "warning",
                f"two sections are called '{text}' (the other is on line {src.body_line + seen[text.casefold()]})",
                "give each section its own question so links and search results are unambiguous",
                "structure.duplicate-heading",
            )
        seen.setdefault(text.casefold(), heading.index)
        previous = level if 1 < level <= TOC_LEVELS[1] else previous
        has_child = n + 1 < len(sections) and sections[n + 1][0].level > level
        if level > 1 and not has_child and not any(line.strip() for line in lines[start:end]):
            f.at(
                offset,
                "error",
                f"section '{text}' is empty",
                "write the answer under the heading, or delete the heading",
                "structure.empty-section",
            )


def _fm_value(fm_text: str, key: str) -> str:
    m = re.search(rf"^{re.escape(key)}\s*:(.*)$", fm_text, re.M)
    return m.group(1) if m else ""


def _fm_block(fm_text: str, key: str) -> str:
    m = re.search(rf"^{re.escape(key)}\s*:.*?(?=^\S|\Z)", fm_text, re.M | re.S)
    return m.group(0) if m else ""


@dataclass
class SiteMap:
    """What internal links may point at: guides (by slug) with their anchors, categories and tags."""

    anchors: dict[str, set[str]]
    paths: dict[str, str]
    taxonomy: Taxonomy
    https_hosts: set[str]


def check_links(src: Source, site: SiteMap) -> list[Problem]:
    """Internal links and #anchors resolve, images exist, no http:// where https:// exists."""
    f = _Found(src)
    body = src.masked
    defs = {m.group(1).strip().casefold(): m for m in REF_DEF_RE.finditer(body)}
    targets: list[tuple[int, str, bool, str]] = []  # (offset of url, url, is_image, link text)
    for m in LINK_RE.finditer(body):
        url = m.group(3)
        start = m.start(3)
        if url.startswith("<"):
            url, start = url[1:-1], start + 1
        targets.append((start, url, m.group(1) == "!", m.group(2)))
    for m in REF_USE_RE.finditer(body):
        ref = (m.group(2) or m.group(1)).strip().casefold()
        if ref not in defs:
            f.at(
                m.start(),
                "error",
                f"link reference [{m.group(2) or m.group(1)}] is not defined",
                "add a line '[name]: /guides/...' or write the link inline",
                "link.reference",
            )
    for m in defs.values():
        url = m.group(2)
        start = m.start(2)
        if url.startswith("<"):
            url, start = url[1:-1], start + 1
        targets.append((start, url, False, m.group(1)))
    for start, url, is_image, text in targets:
        if is_image:
            _check_image(f, src, start, url, text)
        else:
            _check_link(f, src, site, start, url)
    for m in HTTP_RE.finditer(body):
        _check_http(f, site, m.start(), m.group(0), m.group(1))
    for lineno, line in enumerate(src.fm_text.split("\n"), start=2):
        for m in HTTP_RE.finditer(line):
            _check_http_line(f, site, lineno, m.start() + 1, m.group(0), m.group(1))
    return f.items


def _closest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return match[0] if match else ""


def _check_link(f: _Found, src: Source, site: SiteMap, start: int, url: str) -> None:
    if not url:
        f.at(
            start,
            "error",
            "link has no address",
            "put the address inside the brackets: [text](/guides/slug)",
            "link.empty",
        )
        return
    scheme = url.split(":", 1)[0].lower() if SCHEME_RE.match(url) else ""
    if scheme:
        return  # external (http:// is reported by the https check), or a refused scheme load_guides reports
    path, _, anchor = url.partition("#")
    path = path.split("?", 1)[0]
    if not path:
        _check_anchor(f, start, src.slug, anchor, site, own=src)
        return
    if path.startswith("/guides/"):
        slug = path[len("/guides/") :]
        if slug.endswith("/"):
            f.at(
                start,
                "error",
                f"link '{url}' ends with '/', which is not a page",
                f"write /guides/{slug.rstrip('/')}",
                "link.guide",
            )
            return
        if slug not in site.anchors:
            near = _closest(slug, site.anchors)
            hint = (
                f"did you mean /guides/{near}?"
                if near
                else "check the guide's file name (content/<category>/<slug>.md)"
            )
            f.at(start, "error", f"link to a guide that does not exist: {path}", hint, "link.guide")
            return
        if anchor:
            _check_anchor(f, start, slug, anchor, site)
        return
    if path.startswith("/categories/"):
        cat = path[len("/categories/") :]
        if cat not in site.taxonomy.categories:
            f.at(
                start,
                "error",
                f"link to an unknown category: {path}",
                f"use one of: {', '.join(site.taxonomy.categories)}",
                "link.category",
            )
        return
    if path.startswith("/tags/"):
        tag = path[len("/tags/") :]
        if tag not in site.taxonomy.tags:
            f.at(start, "error", f"link to an unknown tag: {path}", "use a tag from content/taxonomy.yml", "link.tag")
        return
    if path in SITE_PAGES or path.startswith(("/api/", "/static/")):
        if path.startswith("/static/") and not (WEB_STATIC / path[len("/static/") :]).is_file():
            f.at(
                start,
                "error",
                f"link to a missing file: {path}",
                "check the file name under kb/web/static/",
                "link.static",
            )
        return
    target = (src.path.parent / path).resolve() if not path.startswith("/") else None
    if target is not None and target.suffix == ".md" and target.stem in site.anchors:
        fixed = f"/guides/{target.stem}" + (f"#{anchor}" if anchor else "")
        f.at(
            start,
            "error",
            f"link to a markdown file '{url}' does not work on the site",
            f"write {fixed}",
            "link.relative",
        )
        return
    f.at(
        start,
        "error",
        f"link '{url}' does not point at a page of this site",
        "link to /guides/<slug>, /guides/<slug>#<section> or a full https:// address",
        "link.unknown",
    )


_STOP = frozenset(
    "a an and are as at be can do does for how i if in is it my of on or the to what when where which who why "
    "with you your".split()
)


def _ranked(anchor: str, anchors: Iterable[str]) -> list[str]:
    """Anchors ordered by likeness to a broken one: shared words first, then spelling."""
    words = set(anchor.split("-")) - _STOP

    def score(a: str) -> tuple[int, float]:
        return len(words & (set(a.split("-")) - _STOP)), difflib.SequenceMatcher(None, anchor, a).ratio()

    return sorted(anchors, key=score, reverse=True)


def _check_anchor(f: _Found, start: int, slug: str, anchor: str, site: SiteMap, own: Source | None = None) -> None:
    anchors = own.anchors if own is not None else site.anchors.get(slug, set())
    if anchor and anchor not in anchors:
        near = _closest(anchor, anchors, cutoff=0.5)
        where = "this guide" if own is not None else f"/guides/{slug} ({site.paths.get(slug, slug)})"
        if near:
            hint = f"did you mean #{near}?"
        elif anchors:
            hint = (
                f"the closest sections are {', '.join('#' + a for a in _ranked(anchor, anchors)[:3])}; "
                "anchors are the heading in lowercase with hyphens"
            )
        else:
            hint = "that guide has no sections: link to the guide itself"
        f.at(start, "error", f"no section '#{anchor}' in {where}", hint, "link.anchor")


def _check_image(f: _Found, src: Source, start: int, url: str, alt: str) -> None:
    if not alt.strip():
        f.at(
            start,
            "warning",
            "image has no alt text",
            "describe the image in the square brackets for screen-reader users",
            "image.alt",
        )
    if not url:
        f.at(start, "error", "image has no address", "put the file name inside the brackets", "image.missing")
        return
    if SCHEME_RE.match(url) and not re.match(r"^https?://", url, re.I):
        return  # a refused scheme (data:, javascript:, ...): load_guides reports it
    if re.match(r"^https?://", url, re.I):
        f.at(
            start,
            "warning",
            "images from other sites are blocked by the site's security policy",
            "save the image next to the guide and link it by file name",
            "image.external",
        )
        return
    path = url.split("#", 1)[0].split("?", 1)[0]
    target = WEB_STATIC / path[len("/static/") :] if path.startswith("/static/") else (src.path.parent / path)
    if not target.is_file():
        f.at(
            start,
            "error",
            f"image file not found: {url}",
            "add the file to the pull request or fix its name (it is relative to the guide)",
            "image.missing",
        )


def _check_http(f: _Found, site: SiteMap, start: int, url: str, host: str) -> None:
    line, col = f.src.position(start)
    _check_http_line(f, site, line, col, url, host)


def _check_http_line(f: _Found, site: SiteMap, line: int, col: int, url: str, host: str) -> None:
    secure = "https://" + url[len("http://") :]
    if host.lower() in site.https_hosts:
        f.line(
            line,
            col,
            "error",
            f"insecure link {url}: {host} is linked with https:// elsewhere",
            f"write {secure}",
            "link.http",
        )
    else:
        f.line(line, col, "warning", f"insecure link {url}", f"use {secure} if the site supports it", "link.http")


def check_html(src: Source) -> list[Problem]:
    """Raw HTML the site removes (tags such as <script>, <iframe> or <form>, event and style
    attributes, addresses other than https/http/mailto) and ids the page itself uses, which the
    site drops (raw HTML) or renames (`{: #feedback}`): each would silently not do what its author meant."""
    f = _Found(src)
    for m in RAW_TAG_RE.finditer(src.masked):
        tag = m.group(1).lower()
        if tag not in ALLOWED_TAGS:
            f.at(
                m.start(),
                "error",
                f"raw HTML <{tag[:30]}> is removed from the page"
                + (
                    ", with everything inside it"
                    if tag in ("script", "style", "template")
                    else " (any text inside it stays, as plain text)"
                ),
                "write it in Markdown (a link is [text](https://...)); the only HTML kept is simple tags such as "
                "<sup>, <sub>, <br> and <details>",
                "html.tag",
            )
            continue
        allowed = ALLOWED_ATTRIBUTES["*"] | ALLOWED_ATTRIBUTES.get(tag, set())
        for a in RAW_ATTR_RE.finditer(m.group(2)):
            name, value = a.group(1).lower(), (a.group(2) or "").strip("\"'").strip()
            offset = m.start(2) + a.start()
            if name not in allowed:
                f.at(
                    offset,
                    "error",
                    f"attribute '{name[:30]}' on <{tag}> is removed from the page",
                    "delete it: guides allow no scripts, styles or other attributes",
                    "html.attribute",
                )
            elif (
                name in ("href", "src")
                and (scheme := SCHEME_RE.match(value))
                and scheme.group(0)[:-1].lower() not in URL_SCHEMES
            ):
                f.at(
                    offset,
                    "error",
                    f"'{scheme.group(0)[:30]}' addresses are removed from the page",
                    "link to an https:// page or a guide",
                    "html.attribute",
                )
            elif name == "id" and value in PAGE_IDS:
                f.at(
                    offset,
                    "error",
                    f"id '{value}' is used by the page itself, so the site removes it",
                    "choose another id",
                    "html.page-id",
                )
    for m in ATTR_LIST_RE.finditer(src.masked):
        for a in ATTR_LIST_ID_RE.finditer(m.group(1)):
            if a.group(1) in PAGE_IDS:
                f.at(
                    m.start(1) + a.start(1),
                    "error",
                    f"id '{a.group(1)}' is used by the page itself, so the site renames it '{a.group(1)}-section'",
                    "choose another id",
                    "html.page-id",
                )
    return f.items


def check_glossary(src: Source, glossary: Glossary) -> list[Problem]:
    """Acronyms used in the guide that content/glossary.yml does not define (one warning each).

    An acronym spelled out in place, as in "Planning Management (MAN)", counts as defined: some
    codes (MAN, COM, CAL) must not enter the glossary, where search would expand the English word.
    """
    f = _Found(src)
    known = set(glossary.lookup())
    text = src.masked
    # each stage blanks its matches in one pass: one copy of the text per match is quadratic
    text = blank_spans(text, [m.span(3) for m in LINK_RE.finditer(text)])
    for m in ABBR_DEF_RE.finditer(text):
        known.add(m.group(1).strip().casefold())
    text = blank_spans(text, [m.span() for m in re.finditer(r"https?://\S+", text)])
    phrases = sorted((k for k in known if " " in k or "-" in k), key=len, reverse=True)
    lowered = text.casefold()
    text = blank_spans(
        text, [m.span() for phrase in phrases for m in re.finditer(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", lowered)]
    )
    text = blank_spans(text, [m.span() for m in HYPHENATED_RE.finditer(text) if m.group(0).casefold() in known])
    # spelled out in place, e.g. "Planning Management (MAN)": the reader has it right there
    reported: set[str] = set(INLINE_DEF_RE.findall(text))
    for m in ACRONYM_RE.finditer(text):
        word, plural = m.group(1), m.group(2)
        if sum(c.isupper() for c in word) < 2 or word in reported:
            continue
        if (
            word.casefold() in known
            or (word + plural).casefold() in known
            or word in EVERYDAY_ABBREVIATIONS
            or (word + plural) in EVERYDAY_ABBREVIATIONS
        ):
            continue
        if CYCLE_RE.match(word) or ROMAN_RE.match(word) or word == "TODO":  # TODO: the placeholder check reports it
            continue
        reported.add(word)
        f.at(
            m.start(),
            "warning",
            f"'{word}' is not in the glossary",
            f"add '- term: {word}' with its expansion and meaning to content/glossary.yml (search expands it, "
            "readers get a tooltip), "
            f"or spell it out where it is first used, as in 'Full Name ({word})'",
            "glossary.missing",
        )
    return f.items


def check_staleness(guide: Guide, src: Source, options: CheckOptions, today: dt.date) -> list[Problem]:
    """A guide whose cycle has passed or whose review is older than `stale_after_days`."""
    f = _Found(src)
    level = "error" if options.strict else "warning"
    if guide.cycle_passed(today):
        f.line(
            _key_line(src.fm_text, "applies_to"),
            1,
            level,
            f"the {guide.applies_to} cycle has passed (the next cycle opened on 1 September {guide.applies_to[2:]})",
            "re-check the facts against this year's sources, then update applies_to and last_reviewed",
            "stale.cycle",
        )
    age = guide.days_since_review(today)
    if age > options.stale_after_days:
        f.line(
            _key_line(src.fm_text, "last_reviewed"),
            1,
            level,
            f"last reviewed {age} days ago ({guide.last_reviewed.isoformat()}); guides are re-checked every "
            f"{options.stale_after_days} days",
            "check every dated fact against its source, then set last_reviewed to today's date",
            "stale.review",
        )
    return f.items


# ---- sources and dated claims --------------------------------------------------------------------
def check_sources(guide: Guide, src: Source) -> list[Problem]:
    """Every source names the page relied on: a site's bare home page (no path, or just '/') is refused."""
    f = _Found(src)
    fm_lines = src.fm_text.split("\n")
    for s in guide.sources:
        if not is_home_page(s.url):
            continue
        line = next((i + 2 for i, text in enumerate(fm_lines) if s.url in text), _key_line(src.fm_text, "sources"))
        f.line(
            line,
            1,
            "error",
            f"source '{s.title}' links the home page {s.url}, not the page that supports the guide",
            "open the page you checked the facts on and paste its own address (e.g. "
            f"{s.url.rstrip('/')}/the-page-you-read)",
            "source.home-page",
        )
    return f.items


MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
    "|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec"
)
CYCLE_CLAIM_RE = re.compile(
    r"\b(?:UKFP|FP) ?(?P<fp>20\d\d)\b"
    r"|\b(?P<ay>20\d\d) ?[/\u2013-] ?(?P<ay2>\d\d)\b(?![-/]\d)"
    rf"|\b(?P<month>{MONTHS}|spring|summer|autumn|winter)\.? (?P<my>20\d\d)\b",
    re.I,
)
HISTORY_RE = re.compile(r"\bhistor(?:y|ic|ical)\b", re.I)
ADMONITION_RE = re.compile(r"^ {0,3}!!! *[\w-]+(?: +\"(?P<title>[^\"\n]*)\")?")


def _claim(m: re.Match) -> tuple[str, int] | None:
    """(what the claim names, the calendar year it dates from) or None when it is not a cycle-specific claim."""
    if m["fp"]:
        return f"FP{m['fp']}", int(m["fp"]) - 1  # a cycle is applied for in the autumn before it starts
    if m["ay"]:
        first = int(m["ay"])
        return (m.group(0), first) if (first + 1) % 100 == int(m["ay2"]) else None
    return m.group(0), int(m["my"])


def _covers(applies_to: str, m: re.Match) -> bool:
    """Whether a guide for `applies_to` may state this claim: its own cycle (FP2027 is applied for in 2026 and
    starts in 2027) and later ones, which its cycle-passed banner reaches first."""
    if not CYCLE_RE.match(applies_to):
        return False
    cycle = int(applies_to[2:])
    if m["fp"]:
        return int(m["fp"]) >= cycle
    if m["ay"]:
        return int(m["ay"]) >= cycle - 1
    return int(m["my"]) >= cycle - 1


def history_lines(src: Source) -> set[int]:
    """Body line indexes exempt from the dated-claims check: sections whose heading says "history"
    (with their sub-sections) and admonitions whose title does."""
    lines = src.masked.split("\n")
    exempt: set[int] = set()
    headings = src.outline.headings
    for n, h in enumerate(headings):
        if HISTORY_RE.search(h.text):
            end = next((later.index for later in headings[n + 1 :] if later.level <= h.level), len(lines))
            exempt.update(range(h.index, end))
    for i, line in enumerate(lines):
        m = ADMONITION_RE.match(line)
        if m and HISTORY_RE.search(m["title"] or ""):
            exempt.add(i)
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith(("    ", "\t"))):
                exempt.add(j)
                j += 1
    return exempt


def check_dated_claims(guide: Guide, src: Source, today: dt.date) -> list[Problem]:
    """Warn on a cycle-specific claim (FP2026, 2025/26, October 2026) from last year on that the guide's
    `applies_to` does not cover: an evergreen guide stating this year's dates goes out of date with no banner."""
    f = _Found(src)
    exempt = history_lines(src)
    body_lines = src.masked.split("\n")
    for i, line in enumerate(body_lines):
        if i in exempt:
            continue
        for m in CYCLE_CLAIM_RE.finditer(line):
            claim = _claim(m)
            if claim is None or claim[1] < today.year - 1 or _covers(guide.applies_to, m):
                continue
            what = f"'{claim[0]}'"
            where = "an evergreen guide" if guide.applies_to == "evergreen" else f"a guide for {guide.applies_to}"
            f.at(
                src.line_starts[i] + m.start(),
                "warning",
                f"{what} is a dated, cycle-specific claim in {where}: it will go out of date with no banner to say so",
                "say it without the year and link the page that publishes the current dates, or move it under a "
                "heading "
                'containing "history" or into a \'!!! note "History"\' block, or set applies_to to the cycle the '
                "guide describes",
                "dated.claim",
            )
    return f.items


# ---- near-duplicate sections ---------------------------------------------------------------------
@dataclass(frozen=True)
class Section:
    """A heading section of a guide (or one part of a long one), as compared for near-duplicates."""

    path: str
    slug: str
    heading: str
    anchor: str
    line: int
    text: str

    @property
    def text_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def where(self) -> str:
        return f"/guides/{self.slug}#{self.anchor}" if self.anchor else f"/guides/{self.slug}"


def sections_of(src: Source, min_chars: int = MIN_DUPLICATE_CHARS) -> list[Section]:
    """Split a guide into sections at its headings, as plain text (no title or heading prefix)."""
    out: list[Section] = []
    for heading, start, end in src.outline.sections():
        text = plain_text("\n".join(src.outline.lines[start:end]))
        line = heading.line if heading else src.body_line
        for part in split_text(text, MAX_CHARS) if text else []:
            if len(part) >= min_chars:
                heading_text, anchor = (plain_text(heading.text), heading.anchor) if heading else ("", "")
                out.append(Section(src.shown, src.slug, heading_text, anchor, line, part))
    return out


class SectionVectors:
    """Embeddings of section texts, kept in an EmbeddingCache by text hash so a re-check embeds only what changed."""

    def __init__(self, embedder, cache_dir: Path | None = None):
        self.embedder = embedder
        self.model = getattr(embedder, "name", "model")
        self.cache_file = Path(cache_dir) / cache_name(self.model) if cache_dir is not None else None
        self.embedded = 0
        self.cached = 0

    def vectors(self, sections: list[Section]) -> np.ndarray:
        cache = EmbeddingCache.load_file(self.cache_file, self.model) if self.cache_file else None
        hashes = [s.text_hash for s in sections]
        found: dict[str, np.ndarray] = {}
        for h in dict.fromkeys(hashes):
            vec = cache.get(h) if cache is not None else None
            if vec is not None:
                found[h] = vec
        todo = sorted({h: s.text for h, s in zip(hashes, sections, strict=True) if h not in found}.items())
        if todo:
            fresh = self.embedder.encode([t for _, t in todo])
            for (h, _), v in zip(todo, fresh, strict=True):
                found[h] = np.asarray(v, dtype=np.float32)
        self.embedded, self.cached = len(todo), len(found) - len(todo)
        if todo and cache is not None:
            try:  # this run's vectors, and those of recent runs (sections since edited back are still free)
                cache.updated(found).save()
            except OSError as exc:  # a read-only checkout still gets its check, only slower next time
                log.warning("could not write the section cache %s (%s)", self.cache_file, exc)
        if not sections:
            return np.zeros((0, 1), dtype=np.float32)
        return np.stack([found[h] for h in hashes])


def find_duplicates(
    targets: list[Section], pool: list[Section], vectors: SectionVectors, threshold: float, newer: dict[str, tuple]
) -> list[tuple[Section, Section, float]]:
    """Sections of `targets` whose best match in another guide of `pool` reaches `threshold`.

    A pair found from both sides is reported once, on the newer guide (`newer` ranks slugs).
    """
    if not targets or not pool:
        return []
    everything = list(dict.fromkeys([*pool, *targets]))
    matrix = vectors.vectors(everything)
    row = {s: i for i, s in enumerate(everything)}
    t = matrix[[row[s] for s in targets]]
    p = matrix[[row[s] for s in pool]]
    sims = t @ p.T
    pool_slugs = np.array([s.slug for s in pool])
    target_slugs = {s.slug for s in targets}
    best: dict[tuple[str, int, str], tuple[Section, Section, float]] = {}
    for i, sec in enumerate(targets):
        scores = np.where(pool_slugs == sec.slug, -1.0, sims[i])
        j = int(np.argmax(scores))
        score = float(scores[j])
        if score < threshold:
            continue
        other = pool[j]
        if other.slug in target_slugs and newer.get(other.slug, ()) > newer.get(sec.slug, ()):
            continue  # the other guide is the newer one: the pair is reported there
        key = (sec.path, sec.line, other.slug)
        if key not in best or best[key][2] < score:
            best[key] = (sec, other, score)
    return sorted(best.values(), key=lambda x: (x[0].path, x[0].line))


# ---- git -----------------------------------------------------------------------------------------
def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60).stdout


def default_base() -> str:
    """The git base a PR check compares against: GITHUB_BASE_REF on Actions, else origin/main or main."""
    ref = os.environ.get("GITHUB_BASE_REF")
    return f"origin/{ref}" if ref else "origin/main"


def changed_files(content_dir: Path, base: str | None = None) -> tuple[set[Path], bool]:
    """Files under the content folder that differ from `base` (committed, staged, unstaged or untracked).

    Returns the changed guide paths and whether taxonomy.yml or glossary.yml changed (which can
    affect every guide). Raises KBError when git or the base is unavailable.
    """
    content_dir = Path(content_dir).resolve()
    try:
        top = Path(_git(content_dir, "rev-parse", "--show-toplevel").strip())
        candidates = [base] if base else [default_base(), "main", "master"]
        ref = None
        for cand in candidates:
            try:
                _git(top, "rev-parse", "--verify", "--quiet", f"{cand}^{{commit}}")
                ref = cand
                break
            except subprocess.CalledProcessError:
                continue
        if ref is None:
            raise KBError(f"git base '{candidates[0]}' not found; fetch it (git fetch origin) or pass --base REF")
        merge_base = _git(top, "merge-base", ref, "HEAD").strip()
        names = set(
            _git(top, "diff", "--name-only", "--no-renames", "-z", merge_base, "--", str(content_dir)).split("\0")
        )
        names |= set(_git(top, "ls-files", "--others", "--exclude-standard", "-z", "--", str(content_dir)).split("\0"))
    except FileNotFoundError as exc:
        raise KBError("git is not installed; run without --changed-only") from exc
    except subprocess.CalledProcessError as exc:
        raise KBError(f"git failed ({(exc.stderr or '').strip()[:200]}); run without --changed-only") from exc
    paths = {(top / n).resolve() for n in names if n}
    shared = any(p.name in ("taxonomy.yml", "glossary.yml") and p.parent == content_dir for p in paths)
    return {p for p in paths if p.suffix == ".md"}, shared


def _git_fresh(content_dir: Path) -> set[Path]:
    """Guides that are new or modified in the working tree (the likely copies in a pair)."""
    try:
        top = Path(_git(content_dir, "rev-parse", "--show-toplevel").strip())
        out = _git(top, "status", "--porcelain", "-z", "--untracked-files=all", "--", str(content_dir))
    except (OSError, subprocess.CalledProcessError):
        return set()
    return {(top / entry[3:]).resolve() for entry in out.split("\0") if len(entry) > 3}


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _scope(
    paths: Iterable[Path | str] | None, content_dir: Path, all_paths: list[Path]
) -> tuple[set[Path] | None, list[Problem]]:
    """The guide files `paths` name (None: every guide), and a problem for each path that is not a guide."""
    if paths is None:
        return None, []
    scope: set[Path] | None = set()
    bad_args: list[Problem] = []
    for raw in paths:
        p = Path(raw).resolve()
        if not p.exists():
            bad_args.append(Problem(str(raw), 0, 0, "error", "no such file", "check the path", "file.missing"))
        elif p.is_dir():
            scope |= {q.resolve() for q in guide_paths(content_dir) if q.resolve().is_relative_to(p)}
        elif not p.is_relative_to(content_dir):
            bad_args.append(
                Problem(
                    str(raw),
                    0,
                    0,
                    "error",
                    "not in the content folder",
                    f"guides live under {content_dir}",
                    "file.location",
                )
            )
        elif p.name in ("taxonomy.yml", "glossary.yml"):
            scope = None  # a shared file affects every guide
            break
        elif p.suffix == ".md" and p in {q.resolve() for q in all_paths}:
            scope.add(p)
        else:
            bad_args.append(
                Problem(
                    str(raw),
                    0,
                    0,
                    "warning",
                    "not a guide, so not checked (files starting with '_' are templates)",
                    "",
                    "file.not-a-guide",
                )
            )
    return scope, bad_args


def _duplicate_problems(
    sources: dict[Path, Source],
    scope: set[Path] | None,
    by_path: dict[Path, Guide],
    content_dir: Path,
    options: CheckOptions,
    embedder,
    cache_dir: Path | str | None,
    notes: list[str],
) -> list[Problem]:
    """Sections of the guides in `scope` that closely match a section of another guide; `notes` says what was
    embedded, or why the check was skipped."""
    found: list[Problem] = []
    targets_src = [s for p, s in sources.items() if scope is None or p in scope]
    pool = [sec for s in sources.values() for sec in sections_of(s)]
    targets = [sec for s in targets_src for sec in sections_of(s)]
    if targets:
        fresh = set(scope or ()) | _git_fresh(content_dir)
        newer = {
            s.slug: (p in fresh, by_path[p].last_reviewed if p in by_path else dt.date.min, _mtime(p), s.shown)
            for p, s in sources.items()
        }
        try:
            if embedder is None:
                from kb.engines.embedding import make_encoder

                embedder = make_encoder()
            vectors = SectionVectors(embedder, Path(cache_dir) if cache_dir else None)
            for sec, other, score in find_duplicates(targets, pool, vectors, options.duplicate_threshold, newer):
                section = f"section '{sec.heading}'" if sec.heading else "the introduction"
                other_section = f"'{other.heading}'" if other.heading else "the introduction"
                found.append(
                    Problem(
                        sec.path,
                        sec.line,
                        1,
                        "warning",
                        f"{section} closely matches {other_section} in {other.path} ({other.where}), "
                        f"similarity {score:.2f}",
                        "add what is new to that guide instead, or link to it rather than repeating it",
                        "duplicate.section",
                    )
                )
            notes.append(
                f"near-duplicate check: {len(targets)} sections against {len(pool)} "
                f"({vectors.embedded} embedded, {vectors.cached} from cache)"
            )
        except KBError as exc:
            notes.append(f"near-duplicate check skipped: {exc.message}")
    return found


# ---- the whole check -----------------------------------------------------------------------------
def check_content(
    content_dir: Path | str,
    *,
    paths: Iterable[Path | str] | None = None,
    changed: tuple[set[Path], bool] | None = None,
    options: CheckOptions | None = None,
    embedder=None,
    cache_dir: Path | str | None = None,
) -> CheckReport:
    """Check the guides: load_guides' schema problems plus structure, links, glossary, staleness
    and near-duplicate sections.

    Args:
        content_dir: The content folder (guides, taxonomy.yml, glossary.yml).
        paths: Report only on these guide files (or folders); None checks everything.
        changed: From `changed_files`, for a PR check: report warnings only on changed guides,
            errors anywhere (a change can break another guide's link).
        options: Thresholds and strictness.
        embedder: Encoder for the near-duplicate check (default: the configured real model).
        cache_dir: Where section embeddings are cached between runs (None: no cache).

    Raises:
        ContentError: The content folder or taxonomy file is missing or unreadable.
    """
    options = options or CheckOptions()
    today = options.today or clock.today()
    content_dir = Path(content_dir).resolve()
    guides, problems = load_guides(content_dir, today)
    notes: list[str] = []
    try:
        glossary = Glossary.load(content_dir)
    except ContentError as exc:
        glossary = Glossary(())
        problems.extend(exc.problems)
    taxonomy = Taxonomy.load(content_dir)
    all_paths = guide_paths(content_dir)
    sources = {p.resolve(): s for p in all_paths if (s := read_source(p.resolve(), content_dir, problems))}

    scope, bad_args = _scope(paths, content_dir, all_paths)
    errors_everywhere = False
    if changed is not None:
        changed_paths, shared = changed
        errors_everywhere = True
        if not shared:
            scope = {p for p in changed_paths if p.is_relative_to(content_dir)} | (scope or set())

    https_hosts = {h.lower() for s in sources.values() for h in HTTPS_HOST_RE.findall(s.text)}
    site = SiteMap(
        anchors={s.slug: s.anchors for s in sources.values()},
        paths={s.slug: s.shown for s in sources.values()},
        taxonomy=taxonomy,
        https_hosts=https_hosts,
    )
    by_path = {Path(g.path).resolve(): g for g in guides}
    for path, src in sources.items():
        problems.extend(check_structure(src))
        problems.extend(check_links(src, site))
        problems.extend(check_html(src))
        problems.extend(check_glossary(src, glossary))
        guide = by_path.get(path)
        if guide is not None:
            problems.extend(check_staleness(guide, src, options, today))
            problems.extend(check_sources(guide, src))
            problems.extend(check_dated_claims(guide, src, today))

    if options.duplicates:
        problems.extend(_duplicate_problems(sources, scope, by_path, content_dir, options, embedder, cache_dir, notes))

    in_scope = (lambda p: True) if scope is None else (lambda p: Path(p.path).resolve() in scope)
    kept = [
        p
        for p in problems
        if in_scope(p) or (errors_everywhere and p.level == "error") or not Path(p.path).suffix == ".md"
    ]
    if options.strict:
        kept = [
            Problem(p.path, p.line, p.col, "error", p.message, p.hint, p.code) if p.code.startswith("stale.") else p
            for p in kept
        ]
    kept = list(dict.fromkeys(bad_args + kept))
    kept.sort(key=lambda p: (p.path, p.line, p.col, p.level != "error", p.message))
    shown_scope = None if scope is None else sorted(sources[p].shown if p in sources else str(p) for p in scope)
    return CheckReport(kept, len(all_paths), shown_scope, notes)


# ---- output --------------------------------------------------------------------------------------
def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(p: Problem) -> str:
    """A GitHub Actions workflow command: shows the problem on the pull request's changed line."""
    kind = "error" if p.level == "error" else "warning"
    props = [f"file={_escape_prop(p.path)}"]
    if p.line:
        props.append(f"line={p.line}")
    if p.col:
        props.append(f"col={p.col}")
    props.append(f"title={_escape_prop(p.code or 'content')}")
    message = p.message + (f" (fix: {p.hint})" if p.hint else "")
    return f"::{kind} {','.join(props)}::{_escape_data(message)}"


def format_report(report: CheckReport, fmt: str = "text") -> str:
    """The report as `text` (path:line:col lines and a summary), `json` or `github` annotations."""
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2)
    lines = [p.format() for p in report.problems]
    if fmt == "github":
        lines += [github_annotation(p) for p in report.problems]
    lines.append(report.summary())
    return "\n".join(lines)
