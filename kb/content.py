"""Discover, parse and check guides (YAML front matter schema) into frozen Guide dataclasses."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import frontmatter
import yaml

from kb import clock
from kb.errors import ContentError, Problem

log = logging.getLogger(__name__)

MAX_GUIDE_BYTES = 1_000_000
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
APPLIES_TO_RE = re.compile(r"^(evergreen|FP20\d\d)$")
REQUIRED = ("title", "summary", "category", "tags", "authors", "last_reviewed", "applies_to", "sources")
FM_RE = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)?---[ \t]*(?:\r?\n|\Z)", re.S)


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps an impossible date such as 2026-13-01 as text for the schema to report."""


def _timestamp(loader: yaml.SafeLoader, node: yaml.Node):
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


class _Handler(frontmatter.YAMLHandler):
    def load(self, fm: str, **kwargs):
        return yaml.load(fm, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


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
                [Problem(str(path), 0, 0, "error", "taxonomy file is missing", "add taxonomy.yml listing categories and tags", "taxonomy.missing")]
            )
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            cats = {slug: Category(slug, str(v.get("title", slug)), str(v.get("description", ""))) for slug, v in (data.get("categories") or {}).items()}
            tags = frozenset(str(t) for t in (data.get("tags") or []))
        except (yaml.YAMLError, AttributeError, TypeError, UnicodeDecodeError, OSError) as exc:
            raise ContentError([Problem(str(path), 0, 0, "error", f"taxonomy file is not valid: {exc}", "fix the YAML", "taxonomy.invalid")]) from exc
        return cls(cats, tags)


@dataclass(frozen=True)
class Guide:
    """One parsed guide. `body` is the markdown after the front matter."""

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
                problems.append(Problem(shown, 0, 0, "error", "symlink points outside the content folder", "replace it with a real file", "file.symlink"))
                return None
        size = path.stat().st_size
        if size > MAX_GUIDE_BYTES:
            problems.append(
                Problem(shown, 0, 0, "error", f"file is {size:,} bytes; the limit is {MAX_GUIDE_BYTES:,}", "split it into several guides", "file.too-large")
            )
            return None
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(shown, 0, 0, "error", f"cannot read file: {exc.strerror or exc}", "check the file exists and is readable", "file.unreadable"))
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(Problem(shown, line, 0, "error", "file is not valid UTF-8", "save the file as UTF-8", "file.encoding"))
        return None
    if "\x00" in text:
        problems.append(Problem(shown, 0, 0, "error", "file contains NUL bytes (binary?)", "save the guide as plain UTF-8 text", "file.binary"))
        return None
    return text.replace("\r\n", "\n")


def parse_guide(path: Path, content_dir: Path, taxonomy: Taxonomy, today: dt.date | None = None) -> tuple[Guide | None, list[Problem]]:
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
    try:
        post = frontmatter.loads(text, handler=_Handler())
        meta = post.metadata
    except yaml.YAMLError as outer:
        exc: yaml.YAMLError = outer
        try:  # re-parse our own slice of the file so marks count from its second line
            yaml.safe_load(fm_text)
        except yaml.YAMLError as own:
            exc = own
        # an unclosed bracket or quote is reported where it was opened, not at the end of the block
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark else 1
        col = mark.column + 1 if mark else 1
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        err(line, f"front matter is not valid YAML: {reason}", "check indentation, colons and quotes (quote values containing ': ')", "front-matter.yaml", col)
        return None, problems
    if not isinstance(meta, dict):
        err(2, "front matter must be a mapping of field: value", "see the template", "front-matter.type")
        return None, problems

    rel = path.relative_to(content_dir) if path.is_relative_to(content_dir) else Path(path.name)
    slug = path.stem
    folder = rel.parts[0] if len(rel.parts) > 1 else ""
    if not SLUG_RE.match(slug):
        err(1, f"file name '{path.name}' is not a valid slug", "use lowercase letters, digits and hyphens, e.g. psa-exam-format.md", "file.slug")
    if len(rel.parts) != 2:
        err(1, "guides must live at content/<category>/<slug>.md", f"move the file into one of: {', '.join(taxonomy.categories)}", "file.location")

    for key in REQUIRED:
        if key not in meta or meta[key] in (None, "", []):
            err(1, f"missing required field '{key}'", f"add '{key}:' to the front matter ({_FIELD_HELP[key]})", f"front-matter.{key}")

    def line(key: str) -> int:
        return _key_line(fm_text, key)

    def text_field(key: str, max_len: int) -> str:
        value = meta.get(key)
        if value in (None, ""):
            return ""
        if not isinstance(value, str):
            err(line(key), f"'{key}' must be text, got {type(value).__name__}", "put the value in quotes", f"front-matter.{key}")
            return str(value)
        if len(value) > max_len:
            err(line(key), f"'{key}' is {len(value)} characters; at most {max_len}", "shorten it", f"front-matter.{key}")
        return value.strip()

    title = text_field("title", 120)
    summary = text_field("summary", 300)

    category = meta.get("category")
    if category not in (None, ""):
        if not isinstance(category, str) or category not in taxonomy.categories:
            err(line("category"), f"unknown category '{category}'", f"use one of: {', '.join(taxonomy.categories)}", "front-matter.category")
        elif folder and category != folder:
            err(
                line("category"),
                f"category '{category}' does not match the folder '{folder}'",
                f"move the file to content/{category}/ or set category: {folder}",
                "front-matter.category",
            )

    def str_list(key: str) -> tuple[str, ...]:
        value = meta.get(key)
        if value in (None, "", []):
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            err(line(key), f"'{key}' must be a list of text values", f"write it as {key}: [first, second]", f"front-matter.{key}")
            return ()
        return tuple(v.strip() for v in value)

    tags = str_list("tags")
    for tag in tags:
        if tag not in taxonomy.tags:
            err(line("tags"), f"unknown tag '{tag}'", "use a tag listed in content/taxonomy.yml, or add it there in the same pull request", "front-matter.tags")
    authors = str_list("authors")

    reviewed = meta.get("last_reviewed")
    last_reviewed = today
    if reviewed not in (None, ""):
        if isinstance(reviewed, dt.datetime):
            reviewed = reviewed.date()
        if isinstance(reviewed, str):
            try:
                reviewed = dt.date.fromisoformat(reviewed.strip())
            except ValueError:
                pass
        if not isinstance(reviewed, dt.date):
            err(
                line("last_reviewed"),
                f"'last_reviewed' must be an ISO date (YYYY-MM-DD), got '{reviewed}'",
                "e.g. last_reviewed: 2026-11-20",
                "front-matter.last_reviewed",
            )
        elif reviewed > today:
            err(
                line("last_reviewed"),
                f"'last_reviewed' {reviewed.isoformat()} is in the future",
                f"use the date you checked the facts, on or before {today.isoformat()}",
                "front-matter.last_reviewed",
            )
        else:
            last_reviewed = reviewed

    applies_to = meta.get("applies_to")
    if applies_to not in (None, ""):
        if not isinstance(applies_to, str) or not APPLIES_TO_RE.match(applies_to):
            err(
                line("applies_to"),
                f"'applies_to' must be 'evergreen' or a cycle like FP2027, got '{applies_to}'",
                "use the foundation programme start year, e.g. applies_to: FP2027",
                "front-matter.applies_to",
            )
            applies_to = "evergreen"
    else:
        applies_to = "evergreen"

    sources: list[Source] = []
    raw_sources = meta.get("sources")
    if raw_sources not in (None, "", []):
        if not isinstance(raw_sources, list):
            err(line("sources"), "'sources' must be a list of {title, url} entries", "see the template", "front-matter.sources")
        else:
            for i, entry in enumerate(raw_sources, 1):
                if isinstance(entry, dict) and isinstance(entry.get("title"), str) and isinstance(entry.get("url"), str):
                    url = entry["url"].strip()
                    if not re.match(r"^https?://[^\s/]+\.[^\s]+$", url):
                        err(line("sources"), f"source {i} has an invalid URL '{url}'", "use a full https:// address", "front-matter.sources")
                    sources.append(Source(entry["title"].strip(), url))
                else:
                    err(
                        line("sources"),
                        f"source {i} must have a 'title' and a 'url'",
                        'write - title: "Page title" then url: "https://..."',
                        "front-matter.sources",
                    )

    body = post.content
    if len(body.strip()) < 1:
        err(body_line, "the guide has no body text", "write the guide below the front matter", "body.empty")

    if any(p.level == "error" for p in problems):
        return None, problems
    guide = Guide(
        slug=slug,
        category=str(category),
        title=title,
        summary=summary,
        tags=tags,
        authors=authors,
        last_reviewed=last_reviewed,
        applies_to=str(applies_to),
        sources=tuple(sources),
        body=body,
        path=shown,
        body_line=body_line,
        content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
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


def load_guides(content_dir: Path | str, today: dt.date | None = None, paths: Iterable[Path] | None = None) -> tuple[list[Guide], list[Problem]]:
    """Load every guide; return the good guides and all problems (duplicates included).

    Never raises for a bad guide: callers decide whether errors stop them.
    """
    content_dir = Path(content_dir).resolve()
    if not content_dir.is_dir():
        raise ContentError(
            [Problem(str(content_dir), 0, 0, "error", "content folder does not exist", "pass --content DIR pointing at the guides", "content.missing")]
        )
    taxonomy = Taxonomy.load(content_dir)
    guides: list[Guide] = []
    problems: list[Problem] = []
    for path in paths if paths is not None else guide_paths(content_dir):
        guide, found = parse_guide(Path(path).resolve() if not Path(path).is_symlink() else Path(path).absolute(), content_dir, taxonomy, today)
        problems.extend(found)
        if guide:
            guides.append(guide)
    seen_slugs: dict[str, Guide] = {}
    seen_titles: dict[str, Guide] = {}
    unique: list[Guide] = []
    for g in guides:
        if g.slug in seen_slugs:
            problems.append(
                Problem(g.path, 1, 1, "error", f"slug '{g.slug}' is already used by {seen_slugs[g.slug].path}", "rename the file", "guide.duplicate-slug")
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
