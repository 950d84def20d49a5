"""Discover, parse and check guides (YAML front matter schema) into frozen Guide dataclasses."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import reprlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from kb import clock
from kb.content.outline import HEADING_RE, SETEXT_RE, Outline, mask_markdown
from kb.errors import ContentError, Problem

log = logging.getLogger(__name__)

# Limits on one guide, checked by parse_guide before anything renders it: the validator, the build
# and the live site all load guides through it, so a guide over a limit is refused everywhere with
# the same path:line:col message (CONTRIBUTING.md lists them). Each is at least five times what the
# largest real guide needs (content/ in 2026-12: 8.9 KB, 112 lines, lines of 740 characters, 12
# headings, lists and quotes 2 deep, brackets 2 deep, 48 markup characters in a paragraph, no raw
# HTML or footnotes, 1.1 KB of front matter, 6 tags), and low enough that no guide within them
# costs more than a few seconds to check, build or show. Beyond them Python-Markdown recurses once
# per nesting level (RecursionError near 300 levels); rescans the rest of a paragraph for each
# unclosed '[' or '(', the rest of the file for each HTML tag left open, and every earlier
# reference for each footnote reference; copies a paragraph's whole text for each piece of inline
# markup in it; and backtracks over long lines. PyYAML works per open bracket for every token.
# benchmarks/bench_hostile_guides.py measures the worst cases at these limits.
MAX_GUIDE_BYTES = 100_000
MAX_LINES = 2_000
MAX_LINE_CHARS = 5_000
MAX_HEADINGS = 100
MAX_NESTING = 16
MAX_BRACKET_DEPTH = 10
MAX_HTML_TAGS = 50
MAX_FOOTNOTE_REFS = 100
MAX_MARKUP_PER_PARAGRAPH = 500
MAX_FRONT_MATTER_BYTES = 10_000
MAX_YAML_DEPTH = 10
MAX_LIST_ITEMS = 50
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
APPLIES_TO_RE = re.compile(r"^(evergreen|FP20\d\d)$")
REQUIRED = ("title", "summary", "category", "tags", "authors", "last_reviewed", "applies_to", "sources")
FM_RE = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)?---[ \t]*(?:\r?\n|\Z)", re.S)


FLAT_HINT = "front matter fields are text, a list of text, or sources given as - title: ... url: ..."


class _Refused(yaml.composer.ComposerError):
    """YAML the guide loader refuses on purpose, with the fix to offer."""

    def __init__(self, problem: str, hint: str, mark) -> None:
        super().__init__(None, None, problem, mark)
        self.hint = hint


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps an impossible date such as 2026-13-01 as text for the schema to report,
    and refuses aliases and deep nesting.

    An alias (`*name`) makes a value share another's nodes, so a few hundred bytes of aliases to
    aliases stand for billions of values once anything walks or prints them (a "billion laughs"
    bomb); front matter never needs them. Deep nesting would exhaust the composer's recursion.
    """

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(
                f"aliases such as '*{_clip(event.anchor, 40)}' are not allowed",
                "write the value out in full",
                event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _Refused(
                    f"values are nested more than {MAX_YAML_DEPTH} levels deep", FLAT_HINT, self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _timestamp(loader: yaml.SafeLoader, node: yaml.Node):
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def load_yaml(text: str):
    """Parse YAML with the guide loader's rules (no aliases, bounded nesting); raises yaml.YAMLError."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4,300 digits
        raise _Refused(f"a value cannot be read: {_clip(str(exc), 80)}", "put the value in quotes", None) from exc


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxdict = 4
_REPR.maxlevel = 2


def _clip(value: object, limit: int = 60) -> str:
    """A value as quoted in a message: cut to `limit` characters, containers summarised, never expanded in full."""
    text = value if isinstance(value, str) else _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Source:
    title: str
    url: str


@dataclass(frozen=True)
class Category:
    slug: str
    title: str
    description: str


@dataclass(frozen=True)
class Taxonomy:
    """The allowed categories and tags, from `content/taxonomy.yml`."""

    categories: dict[str, Category]
    tags: frozenset[str]

    @classmethod
    def load(cls, content_dir: Path) -> Taxonomy:
        path = Path(content_dir) / "taxonomy.yml"
        if not path.exists():
            raise ContentError(
                [
                    Problem(
                        str(path),
                        0,
                        0,
                        "error",
                        "taxonomy file is missing",
                        "add taxonomy.yml listing categories and tags",
                        "taxonomy.missing",
                    )
                ]
            )
        try:
            data = load_yaml(path.read_text(encoding="utf-8")) or {}
            cats = {
                slug: Category(slug, str(v.get("title", slug)), str(v.get("description", "")))
                for slug, v in (data.get("categories") or {}).items()
            }
            tags = frozenset(str(t) for t in (data.get("tags") or []))
        except (yaml.YAMLError, AttributeError, TypeError, UnicodeDecodeError, OSError) as exc:
            raise ContentError(
                [
                    Problem(
                        str(path),
                        0,
                        0,
                        "error",
                        f"taxonomy file is not valid: {exc}",
                        "fix the YAML",
                        "taxonomy.invalid",
                    )
                ]
            ) from exc
        return cls(cats, tags)


@dataclass(frozen=True)
class Guide:
    """One parsed guide. `body` is the markdown after the front matter; `outline` its headings and
    sections, scanned once here for the chunker (kb.content.outline)."""

    slug: str
    category: str
    title: str
    summary: str
    tags: tuple[str, ...]
    authors: tuple[str, ...]
    last_reviewed: dt.date
    applies_to: str
    sources: tuple[Source, ...]
    body: str
    path: str
    body_line: int
    content_hash: str
    outline: Outline = field(compare=False, repr=False)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def url(self) -> str:
        return f"/guides/{self.slug}"

    def cycle_passed(self, today: dt.date | None = None) -> bool:
        """True when `applies_to` names an FP cycle whose applications have closed for good.

        FP2027 applicants apply in autumn 2026; once the next cycle opens (1 September of the
        start year) the guide describes a past cycle.
        """
        if not self.applies_to.startswith("FP"):
            return False
        year = int(self.applies_to[2:])
        return (today or clock.today()) >= dt.date(year, 9, 1)

    def days_since_review(self, today: dt.date | None = None) -> int:
        return ((today or clock.today()) - self.last_reviewed).days

    def as_dict(self) -> dict:
        return {
            "slug": self.slug,
            "title": self.title,
            "summary": self.summary,
            "category": self.category,
            "tags": list(self.tags),
            "authors": list(self.authors),
            "last_reviewed": self.last_reviewed.isoformat(),
            "applies_to": self.applies_to,
            "sources": [{"title": s.title, "url": s.url} for s in self.sources],
            "url": self.url,
        }


def is_home_page(url: str) -> bool:
    """A site's bare home page (no path, or just '/', and no query): a source must name the page it relies on."""
    parts = urlsplit(url.strip())
    return not parts.path.strip("/") and not parts.query


def _front_matter_limit(fm_text: str) -> tuple[int, str, str, str, int] | None:
    """(line, message, hint, code, column) when the front matter is too large or its brackets nest too deeply to parse.

    Checked before YAML parsing: PyYAML's scanner does work per open bracket for every token, so
    thousands of '[' cost minutes before the nesting limit in `_Loader` is reached.
    """
    size = len(fm_text.encode("utf-8"))
    if size > MAX_FRONT_MATTER_BYTES:
        return (
            2,
            f"front matter is {size:,} bytes; the limit is {MAX_FRONT_MATTER_BYTES:,}",
            "keep to the fields in the template, and put the rest in the body",
            "front-matter.too-large",
            1,
        )
    depth = 0
    for m in re.finditer(r"[\[\]{}]", fm_text):
        depth = depth + 1 if m.group(0) in "[{" else max(depth - 1, 0)
        if depth > MAX_YAML_DEPTH:
            col = m.start() - fm_text.rfind("\n", 0, m.start())
            return (
                2 + fm_text.count("\n", 0, m.start()),
                f"brackets are nested more than {MAX_YAML_DEPTH} deep",
                FLAT_HINT,
                "front-matter.yaml",
                col,
            )
    return None


def _key_line(fm_text: str, key: str) -> int:
    """1-based file line of a top-level front matter key (the `---` is line 1)."""
    for i, line in enumerate(fm_text.splitlines()):
        if re.match(rf"^{re.escape(key)}\s*:", line):
            return i + 2
    return 1


def read_text(path: Path, shown: str, problems: list[Problem], content_dir: Path | None = None) -> str | None:
    """Read a guide file safely: size, encoding, symlinks out of the content folder."""
    try:
        if content_dir is not None and path.is_symlink():
            target = Path(os.path.realpath(path))  # unlike Path.resolve, never raises on a symlink loop
            if not target.is_relative_to(Path(content_dir).resolve()):
                problems.append(
                    Problem(
                        shown,
                        0,
                        0,
                        "error",
                        "symlink points outside the content folder",
                        "replace it with a real file",
                        "file.symlink",
                    )
                )
                return None
        size = path.stat().st_size
        if size > MAX_GUIDE_BYTES:
            problems.append(
                Problem(
                    shown,
                    0,
                    0,
                    "error",
                    f"file is {size:,} bytes; the limit is {MAX_GUIDE_BYTES:,}",
                    "split it into several guides",
                    "file.too-large",
                )
            )
            return None
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(
            Problem(
                shown,
                0,
                0,
                "error",
                f"cannot read file: {exc.strerror or exc}",
                "check the file exists and is readable",
                "file.unreadable",
            )
        )
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(
            Problem(shown, line, 0, "error", "file is not valid UTF-8", "save the file as UTF-8", "file.encoding")
        )
        return None
    if "\x00" in text:
        problems.append(
            Problem(
                shown,
                0,
                0,
                "error",
                "file contains NUL bytes (binary?)",
                "save the guide as plain UTF-8 text",
                "file.binary",
            )
        )
        return None
    return text.replace("\r\n", "\n")


# ---- the body: limits and link schemes ---------------------------------------------------------
LINK_RE = re.compile(
    r"(!?)\[((?:[^\[\]\n]|\[[^\]\n]*\])*)\]\(\s*(<[^>\n]*>|[^)\s]*)(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^)\n]*\)))?\s*\)"
)
REF_DEF_RE = re.compile(r"^ {0,3}\[([^\]^\n][^\]\n]*)\]:[ \t]*(<[^>\n]*>|\S+)", re.M)
SCHEME_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")
LINK_SCHEMES = ("https", "http", "mailto")
IMAGE_SCHEMES = ("https", "http")

HTML_TAG_START_RE = re.compile(r"<[A-Za-z/!?]")
MARKUP_CHARS = ("\\", "`", "*", "_", "[", "!", "<", "&")
ORDERED_MARKER_RE = re.compile(r"\d{1,9}[.)](?=[ \t]|$)")
# An escaped '[' still counts as an opener (the plain-text regexes see it) but an escaped ']' never
# closes (Python-Markdown does not see it), so the count errs on the side of a deeper nesting.
BRACKET_TOKEN_RE = re.compile(r"\\[\s\S]|[\[\]()]|\n[ \t]*(?=\n)")


def _nesting(line: str) -> int:
    """How many containers a line sits in: one per '>' and list marker it starts with, one per 4 columns of
    indentation."""
    depth = columns = i = 0
    while i < len(line):
        c = line[i]
        if c == " ":
            columns += 1
        elif c == "\t":
            columns += 4 - columns % 4
        elif c == ">" or (c in "-*+" and line[i + 1 : i + 2] in ("", " ", "\t")):
            depth += 1
        elif c.isdigit() and (m := ORDERED_MARKER_RE.match(line, i)):
            depth += 1
            i = m.end()
            continue
        else:
            break
        i += 1
    return depth + columns // 4


def _bracket_depth(body: str, limit: int) -> tuple[int, int] | None:
    """(depth, offset) where '[' or '(' brackets first nest deeper than `limit`, else None.

    Python-Markdown looks for the ']' or ')' matching each '[' or '(' up to the end of the
    paragraph, so depth is counted per paragraph.
    """
    square = round_ = 0
    for m in BRACKET_TOKEN_RE.finditer(body):
        token = m.group(0)
        if token[0] == "\n":
            square = round_ = 0
            continue
        c = token[-1]
        if c == "[":
            square += 1
        elif c == "(":
            round_ += 1
        elif len(token) == 2:  # an escaped ']' or ')' closes nothing
            continue
        elif c == "]":
            square = max(square - 1, 0)
        elif c == ")":
            round_ = max(round_ - 1, 0)
        if square > limit or round_ > limit:
            return max(square, round_), m.start()
    return None


def _where(body: str, body_line: int, offset: int) -> tuple[int, int]:
    """Body offset -> 1-based (file line, column)."""
    line_start = body.rfind("\n", 0, offset) + 1
    return body_line + body.count("\n", 0, offset), offset - line_start + 1


def limit_problems(body: str, body_line: int, shown: str) -> list[Problem]:
    """The body's limits (lines, line length, headings, nesting, brackets, markup, HTML tags,
    footnotes), each reported once at the place the body first goes over it.

    Linear in the body's length, and run before anything renders the body: over the limits,
    rendering and the checks may be slow. `body` is the text after the front matter, starting on
    file line `body_line`; `shown` is the path in messages.
    """
    problems: list[Problem] = []

    def err(offset: int, msg: str, hint: str, code: str) -> None:
        line, col = _where(body, body_line, offset)
        problems.append(Problem(shown, line, col, "error", msg, hint, code))

    line_count = body.count("\n") + 1
    if line_count > MAX_LINES:
        err(
            _nth(body, "\n", MAX_LINES) + 1,
            f"the guide body has {line_count:,} lines; the limit is {MAX_LINES:,}",
            "split it into several guides",
            "body.lines",
        )
    offset = 0
    too_long = too_deep = False
    for line in body.split("\n"):
        if len(line) > MAX_LINE_CHARS and not too_long:
            too_long = True
            err(
                offset + MAX_LINE_CHARS,
                f"this line is {len(line):,} characters long; the limit is {MAX_LINE_CHARS:,}",
                "break it into paragraphs (a blank line between them) or shorter lines",
                "body.line-length",
            )
        depth = 0 if too_deep else _nesting(line)
        if depth > MAX_NESTING:
            too_deep = True
            err(
                offset,
                f"this line is nested {depth} levels deep (lists, quotes and indentation); the limit is {MAX_NESTING}",
                "flatten the list or quote, and indent each level by 4 spaces",
                "body.nesting",
            )
        offset += len(line) + 1
    headings = [m.start() for m in HEADING_RE.finditer(body)]
    for m in SETEXT_RE.finditer(body):
        above = body.rfind("\n", 0, max(m.start() - 1, 0))
        if m.start() > 0 and body[above + 1 : m.start() - 1].strip():
            headings.append(m.start())
    if len(headings) > MAX_HEADINGS:
        err(
            sorted(headings)[MAX_HEADINGS],
            f"more than {MAX_HEADINGS} headings (this is heading {MAX_HEADINGS + 1}); the limit is {MAX_HEADINGS}",
            "split the guide into several guides, or merge short sections",
            "body.headings",
        )
    deep = _bracket_depth(body, MAX_BRACKET_DEPTH)
    if deep:
        err(
            deep[1],
            f"brackets are nested {deep[0]} deep here (an unclosed '[' or '(' counts until the next blank line); "
            f"the limit is {MAX_BRACKET_DEPTH}",
            "close each '[' with ']' and each '(' with ')', and check for one left open above this point",
            "body.brackets",
        )
    tags = [m.start() for _, m in zip(range(MAX_HTML_TAGS + 1), HTML_TAG_START_RE.finditer(body), strict=False)]
    if len(tags) > MAX_HTML_TAGS:
        err(
            tags[MAX_HTML_TAGS],
            f"more than {MAX_HTML_TAGS} HTML tags or comments (this is number {MAX_HTML_TAGS + 1}); the limit is "
            f"{MAX_HTML_TAGS}",
            "write the guide in Markdown and delete the HTML (the site removes most of it anyway)",
            "body.html",
        )
    dense = _dense_paragraph(body, MAX_MARKUP_PER_PARAGRAPH)
    if dense is not None:
        err(
            dense,
            f"this paragraph has more than {MAX_MARKUP_PER_PARAGRAPH} formatting characters "
            f"({' '.join(MARKUP_CHARS)} and line breaks); the limit is {MAX_MARKUP_PER_PARAGRAPH}",
            "split it into shorter paragraphs (a blank line between them), or use less formatting",
            "body.markup",
        )
    footnotes = _nth(body, "[^", MAX_FOOTNOTE_REFS + 1)
    if footnotes >= 0:
        err(
            footnotes,
            f"more than {MAX_FOOTNOTE_REFS} footnote references and notes ('[^'); the limit is {MAX_FOOTNOTE_REFS}",
            "cite fewer footnotes, or put the sources in the front matter's sources list",
            "body.footnotes",
        )
    return problems


def _dense_paragraph(body: str, limit: int) -> int | None:
    """Offset of the line where a paragraph's formatting characters first exceed `limit`, else None.

    Python-Markdown rebuilds a paragraph's whole text for each inline match (escape, code span,
    emphasis, link, entity, line break), so the cost is matches times length; each match starts
    with one of MARKUP_CHARS, or is a line ending in two spaces.
    """
    count = offset = 0
    for line in body.split("\n"):
        if not line.strip(" \t"):
            count = 0
        else:
            count += sum(line.count(c) for c in MARKUP_CHARS) + line.endswith("  ")
            if count > limit:
                return offset
        offset += len(line) + 1
    return None


def _nth(text: str, sub: str, n: int) -> int:
    """Offset of the n-th (1-based) occurrence of `sub` in `text`, or -1."""
    at = -1
    for _ in range(n):
        at = text.find(sub, at + 1)
        if at < 0:
            return -1
    return at


def scheme_problems(body: str, body_line: int, shown: str) -> list[Problem]:
    """Links and images whose address names a scheme the site refuses (javascript:, data:, file:, ...).

    The renderer drops such an address, so the link would go nowhere; refusing it here stops the
    build and the site, not only the checker. Call only on a body within `limit_problems`.
    """
    problems: list[Problem] = []

    def err(offset: int, msg: str, hint: str, code: str) -> None:
        line, col = _where(body, body_line, offset)
        problems.append(Problem(shown, line, col, "error", msg, hint, code))

    masked, _ = mask_markdown(body)
    for m in LINK_RE.finditer(masked):
        _check_scheme(m.group(3), m.start(3), m.group(1) == "!", err)
    for m in REF_DEF_RE.finditer(masked):
        _check_scheme(m.group(2), m.start(2), False, err)
    return problems


def _check_scheme(url: str, start: int, is_image: bool, err) -> None:
    if url.startswith("<"):
        url, start = url[1:-1], start + 1
    m = SCHEME_RE.match(url)
    if not m:
        return
    scheme = m.group(0)[:-1].lower()
    allowed = IMAGE_SCHEMES if is_image else LINK_SCHEMES
    if scheme not in allowed:
        what = "images" if is_image else "links"
        target = "an image file saved next to the guide" if is_image else "an https:// page or a guide"
        err(start, f"'{_clip(scheme, 30)}:' {what} are not allowed", f"use {target}", "link.scheme")


Report = Callable[..., None]  # err(line, message, hint, code, col=1): one error in the guide being parsed


def _read_front_matter(fm_text: str, err: Report) -> dict | None:
    """The front matter's fields, or None once `err` has been told why they cannot be read."""
    over = _front_matter_limit(fm_text)
    if over:
        err(*over)
        return None
    try:
        data = load_yaml(fm_text)
    except yaml.YAMLError as exc:
        # an unclosed bracket or quote is reported where it was opened, not at the end of the block;
        # marks count from the front matter's first line, which is the file's second
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark else 1
        col = mark.column + 1 if mark else 1
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        hint = getattr(exc, "hint", "check indentation, colons and quotes (quote values containing ': ')")
        err(line, f"front matter is not valid YAML: {reason}", hint, "front-matter.yaml", col)
        return None
    # YAML that is not a mapping (empty, a list, one value) has no fields: each required one is reported missing
    return data if isinstance(data, dict) else {}


def _folder(path: Path, content_dir: Path, taxonomy: Taxonomy, err: Report) -> str:
    """The category folder a guide sits in ("" when none), after checking its file name and place."""
    rel = path.relative_to(content_dir) if path.is_relative_to(content_dir) else Path(path.name)
    if not SLUG_RE.match(path.stem):
        err(
            1,
            f"file name '{path.name}' is not a valid slug",
            "use lowercase letters, digits and hyphens, e.g. psa-exam-format.md",
            "file.slug",
        )
    if len(rel.parts) != 2:
        err(
            1,
            "guides must live at content/<category>/<slug>.md",
            f"move the file into one of: {', '.join(taxonomy.categories)}",
            "file.location",
        )
    return rel.parts[0] if len(rel.parts) > 1 else ""


class _Fields:
    """Reads the schema's fields out of a guide's front matter, reporting each problem on its key's line."""

    def __init__(self, meta: dict, fm_text: str, err: Report) -> None:
        self.meta = meta
        self.fm_text = fm_text
        self.err = err
        self.lines: dict[str, int] = {}

    def line(self, key: str) -> int:
        """The key's file line; cached, as a long list can report one problem per item."""
        if key not in self.lines:
            self.lines[key] = _key_line(self.fm_text, key)
        return self.lines[key]

    def fail(self, key: str, message: str, hint: str) -> None:
        self.err(self.line(key), message, hint, f"front-matter.{key}")

    def required(self) -> None:
        for key in REQUIRED:
            if key not in self.meta or self.meta[key] in (None, "", []):
                self.err(
                    1,
                    f"missing required field '{key}'",
                    f"add '{key}:' to the front matter ({_FIELD_HELP[key]})",
                    f"front-matter.{key}",
                )

    def too_many(self, key: str, value: list) -> bool:
        if len(value) > MAX_LIST_ITEMS:
            self.fail(
                key, f"'{key}' has {len(value):,} entries; at most {MAX_LIST_ITEMS}", "keep the ones that matter most"
            )
        return len(value) > MAX_LIST_ITEMS

    def text(self, key: str, max_len: int) -> str:
        value = self.meta.get(key)
        if value in (None, ""):
            return ""
        if not isinstance(value, str):
            self.fail(key, f"'{key}' must be text, got {type(value).__name__}", "put the value in quotes")
            return _clip(value)
        if len(value) > max_len:
            self.fail(key, f"'{key}' is {len(value)} characters; at most {max_len}", "shorten it")
        return value.strip()

    def category(self, taxonomy: Taxonomy, folder: str) -> object:
        category = self.meta.get("category")
        if category in (None, ""):
            return category
        if not isinstance(category, str) or category not in taxonomy.categories:
            self.fail(
                "category", f"unknown category '{_clip(category)}'", f"use one of: {', '.join(taxonomy.categories)}"
            )
        elif folder and category != folder:
            self.fail(
                "category",
                f"category '{_clip(category)}' does not match the folder '{folder}'",
                f"move the file to content/{category}/ or set category: {folder}",
            )
        return category

    def str_list(self, key: str) -> tuple[str, ...]:
        value = self.meta.get(key)
        if value in (None, "", []):
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.fail(key, f"'{key}' must be a list of text values", f"write it as {key}: [first, second]")
            return ()
        if self.too_many(key, value):
            return ()
        return tuple(v.strip() for v in value)

    def tags(self, taxonomy: Taxonomy) -> tuple[str, ...]:
        tags = self.str_list("tags")
        for tag in tags:
            if tag not in taxonomy.tags:
                self.fail(
                    "tags",
                    f"unknown tag '{_clip(tag)}'",
                    "use a tag listed in content/taxonomy.yml, or add it there in the same pull request",
                )
        return tags

    def last_reviewed(self, today: dt.date) -> dt.date:
        reviewed = self.meta.get("last_reviewed")
        if reviewed in (None, ""):
            return today
        if isinstance(reviewed, dt.datetime):
            reviewed = reviewed.date()
        if isinstance(reviewed, str):
            try:
                reviewed = dt.date.fromisoformat(reviewed.strip())
            except ValueError:
                pass
        if not isinstance(reviewed, dt.date):
            self.fail(
                "last_reviewed",
                f"'last_reviewed' must be an ISO date (YYYY-MM-DD), got '{_clip(reviewed)}'",
                "e.g. last_reviewed: 2026-11-20",
            )
        elif reviewed > today:
            self.fail(
                "last_reviewed",
                f"'last_reviewed' {reviewed.isoformat()} is in the future",
                f"use the date you checked the facts, on or before {today.isoformat()}",
            )
        else:
            return reviewed
        return today

    def applies_to(self) -> str:
        applies_to = self.meta.get("applies_to")
        if applies_to in (None, ""):
            return "evergreen"
        if not isinstance(applies_to, str) or not APPLIES_TO_RE.match(applies_to):
            self.fail(
                "applies_to",
                f"'applies_to' must be 'evergreen' or a cycle like FP2027, got '{_clip(applies_to)}'",
                "use the foundation programme start year, e.g. applies_to: FP2027",
            )
            return "evergreen"
        return applies_to

    def sources(self) -> tuple[Source, ...]:
        raw = self.meta.get("sources")
        if raw in (None, "", []):
            return ()
        if not isinstance(raw, list):
            self.fail("sources", "'sources' must be a list of {title, url} entries", "see the template")
            return ()
        if self.too_many("sources", raw):
            return ()
        sources: list[Source] = []
        for i, entry in enumerate(raw, 1):
            if isinstance(entry, dict) and isinstance(entry.get("title"), str) and isinstance(entry.get("url"), str):
                url = entry["url"].strip()
                if not re.match(r"^https?://[^\s/]+\.[^\s]+$", url):
                    self.fail("sources", f"source {i} has an invalid URL '{_clip(url)}'", "use a full https:// address")
                sources.append(Source(entry["title"].strip(), url))
            else:
                self.fail(
                    "sources",
                    f"source {i} must have a 'title' and a 'url'",
                    'write - title: "Page title" then url: "https://..."',
                )
        return tuple(sources)


def _body_problems(body: str, body_line: int, shown: str) -> tuple[Outline | None, list[Problem]]:
    """The body's outline (None when it is over a limit) and its problems: limits, link schemes, and
    headings the page cannot anchor."""
    over = limit_problems(body, body_line, shown)
    if over:
        return None, over
    outline = Outline.scan(body, body_line)
    return outline, scheme_problems(body, body_line, shown) + outline.refusals(shown)


def parse_guide(
    path: Path, content_dir: Path, taxonomy: Taxonomy, today: dt.date | None = None
) -> tuple[Guide | None, list[Problem]]:
    """Parse one guide file; return the Guide (or None) and every problem found."""
    today = today or clock.today()
    problems: list[Problem] = []
    try:
        shown = str(path.relative_to(Path.cwd()))
    except ValueError:
        shown = str(path)

    def err(line: int, msg: str, hint: str, code: str, col: int = 1) -> None:
        problems.append(Problem(shown, line, col if line else 0, "error", msg, hint, code))

    text = read_text(path, shown, problems, content_dir)
    if text is None:
        return None, problems
    if not text.strip():
        err(1, "file is empty", "copy the template from CONTRIBUTING.md", "file.empty")
        return None, problems
    match = FM_RE.match(text)
    if not match:
        err(
            1,
            "no front matter: the file must start with a line '---', the YAML fields, then '---'",
            "copy the front matter block from the template",
            "front-matter.missing",
        )
        return None, problems
    fm_text = match.group(1) or ""
    body_line = text[: match.end()].count("\n") + 1
    outline, found = _body_problems(text[match.end() :], body_line, shown)
    problems.extend(found)
    meta = _read_front_matter(fm_text, err)
    if meta is None:
        return None, problems
    folder = _folder(path, content_dir, taxonomy, err)
    fields = _Fields(meta, fm_text, err)
    fields.required()
    title = fields.text("title", 120)
    summary = fields.text("summary", 300)
    category = fields.category(taxonomy, folder)
    tags = fields.tags(taxonomy)
    authors = fields.str_list("authors")
    last_reviewed = fields.last_reviewed(today)
    applies_to = fields.applies_to()
    sources = fields.sources()
    body = text[match.end() :].strip()
    if not body:
        err(body_line, "the guide has no body text", "write the guide below the front matter", "body.empty")
    if outline is None or any(p.level == "error" for p in problems):
        return None, problems
    guide = Guide(
        slug=path.stem,
        category=str(category),
        title=title,
        summary=summary,
        tags=tags,
        authors=authors,
        last_reviewed=last_reviewed,
        applies_to=applies_to,
        sources=sources,
        body=body,
        path=shown,
        body_line=body_line,
        content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        outline=outline,
    )
    return guide, problems


_FIELD_HELP = {
    "title": 'the question or topic, e.g. title: "How is the PSA marked?"',
    "summary": "one or two sentences on what the guide answers",
    "category": "the folder name, e.g. psa",
    "tags": "a list from content/taxonomy.yml, e.g. [psa, exams]",
    "authors": 'a role, e.g. ["Final-year student"]',
    "last_reviewed": "the date you checked the facts, e.g. 2026-11-20",
    "applies_to": "evergreen or a cycle such as FP2027",
    "sources": "a list of - title: ... url: https://...",
}


def guide_paths(content_dir: Path) -> list[Path]:
    """Every `*.md` file under the content folder, sorted, excluding hidden and template files."""
    content_dir = Path(content_dir)
    paths = []
    for p in sorted(content_dir.rglob("*.md")):
        rel = p.relative_to(content_dir)
        if any(part.startswith((".", "_")) for part in rel.parts):
            continue
        if rel.parts[0].upper() == rel.parts[0] and len(rel.parts) == 1:
            continue  # README.md and friends at the top level
        paths.append(p)
    return paths


def load_guides(
    content_dir: Path | str, today: dt.date | None = None, paths: Iterable[Path] | None = None
) -> tuple[list[Guide], list[Problem]]:
    """Load every guide; return the good guides and all problems (duplicates included).

    Never raises for a bad guide: callers decide whether errors stop them.
    """
    content_dir = Path(content_dir).resolve()
    if not content_dir.is_dir():
        raise ContentError(
            [
                Problem(
                    str(content_dir),
                    0,
                    0,
                    "error",
                    "content folder does not exist",
                    "pass --content DIR pointing at the guides",
                    "content.missing",
                )
            ]
        )
    taxonomy = Taxonomy.load(content_dir)
    guides: list[Guide] = []
    problems: list[Problem] = []
    for path in paths if paths is not None else guide_paths(content_dir):
        guide, found = parse_guide(
            Path(path).resolve() if not Path(path).is_symlink() else Path(path).absolute(), content_dir, taxonomy, today
        )
        problems.extend(found)
        if guide:
            guides.append(guide)
    seen_slugs: dict[str, Guide] = {}
    seen_titles: dict[str, Guide] = {}
    unique: list[Guide] = []
    for g in guides:
        if g.slug in seen_slugs:
            problems.append(
                Problem(
                    g.path,
                    1,
                    1,
                    "error",
                    f"slug '{g.slug}' is already used by {seen_slugs[g.slug].path}",
                    "rename the file",
                    "guide.duplicate-slug",
                )
            )
            continue
        key = g.title.casefold()
        if key in seen_titles:
            problems.append(
                Problem(
                    g.path,
                    2,
                    1,
                    "error",
                    f"title '{g.title}' is already used by {seen_titles[key].path}",
                    "give the guide a distinct title",
                    "guide.duplicate-title",
                )
            )
            continue
        seen_slugs[g.slug] = g
        seen_titles[key] = g
        unique.append(g)
    return unique, problems


def load_guides_strict(content_dir: Path | str, today: dt.date | None = None) -> list[Guide]:
    """Load every guide or raise ContentError listing every error in every guide."""
    guides, problems = load_guides(content_dir, today)
    if any(p.level == "error" for p in problems):
        raise ContentError(problems)
    return guides
