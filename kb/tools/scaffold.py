"""Start a new guide: a correctly named file with complete front matter and the template's section prompts."""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kb import clock
from kb.content.guide import FM_RE, SLUG_RE, Guide, Taxonomy, is_home_page, load_guides
from kb.errors import KBError

TEMPLATE = "_template.md"
MAX_SLUG = 60


class ScaffoldError(KBError):
    """The new guide cannot be written as asked; the message says what to change."""

    status = 400


@dataclass(frozen=True)
class NewGuide:
    path: Path
    slug: str
    text: str
    suggested_sources: bool


def slugify(title: str) -> str:
    """'Surviving your first on-call' -> 'surviving-your-first-on-call' (ASCII, at most 60 characters)."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    text = re.sub(r"['’]", "", text.lower())
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    if len(slug) > MAX_SLUG:
        slug = slug[:MAX_SLUG].rsplit("-", 1)[0]
    return slug


def default_summary(title: str) -> str:
    if title.rstrip().endswith("?"):
        return f"The year above answers: {title.strip()}"
    return f"{title.strip().rstrip('.')}: what the year above wishes they had known."


def template_body(content_dir: Path) -> str:
    """The template's body (after its front matter), with its section prompts."""
    path = Path(content_dir) / TEMPLATE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScaffoldError(f"the guide template {path} is missing; restore it from the repository") from exc
    m = FM_RE.match(text)
    return (text[m.end() :] if m else text).lstrip("\n")


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid double-quoted YAML scalar


def _tags(tags: list[str] | None, taxonomy: Taxonomy, peers: list[Guide], category: str) -> list[str]:
    """The tags given, checked against the taxonomy; or the three the category's guides use most."""
    if tags:
        unknown = [t for t in tags if t not in taxonomy.tags]
        if unknown:
            raise ScaffoldError(
                f"unknown tag(s) {', '.join(unknown)}; use tags from content/taxonomy.yml or add them there"
            )
        return tags
    counted = Counter(t for g in peers for t in g.tags)
    tags = [t for t, _ in counted.most_common(3)] or ([category] if category in taxonomy.tags else [])
    if not tags:
        raise ScaffoldError(f"no guides in '{category}' to suggest tags from; pass --tag (see content/taxonomy.yml)")
    return tags


def _sources(sources: list[tuple[str, str]] | None, peers: list[Guide], category: str) -> list[tuple[str, str]]:
    """The sources given, or the two the category's guides cite most; each must name a page over https."""
    if not sources:
        cited = Counter((s.title, s.url) for g in peers for s in g.sources)
        sources = [s for s, _ in cited.most_common(2)]
        if not sources:
            raise ScaffoldError(
                f"no guides in '{category}' to suggest sources from; pass --source \"Page title | https://...\""
            )
    for _, url in sources:
        if not re.match(r"^https://[^\s/]+\.[^\s]+$", url):
            raise ScaffoldError(f"source address '{url}' must be a full https:// address")
        if is_home_page(url):
            raise ScaffoldError(
                f"source address '{url}' is a home page; give the address of the page you checked the facts on"
            )
    return sources


def new_guide(
    content_dir: Path | str,
    title: str,
    category: str,
    *,
    tags: list[str] | None = None,
    summary: str | None = None,
    authors: list[str] | None = None,
    applies_to: str = "evergreen",
    sources: list[tuple[str, str]] | None = None,
    slug: str | None = None,
    today: dt.date | None = None,
    overwrite: bool = False,
) -> NewGuide:
    """Write `content/<category>/<slug>.md` from the template and return what was written.

    Tags and sources default to the ones most used by the category's existing guides, so the
    front matter is complete at once; the body keeps the template's TODO prompts, which the
    validator refuses until they are replaced.

    Raises:
        ScaffoldError: unknown category or tag, a taken slug or title, a bad value.
    """
    content_dir = Path(content_dir)
    today = today or clock.today()
    taxonomy = Taxonomy.load(content_dir)
    title = " ".join((title or "").split())
    if not title:
        raise ScaffoldError('the title is empty: give the question or topic, e.g. "Surviving your first on-call"')
    if len(title) > 120:
        raise ScaffoldError(f"the title is {len(title)} characters; keep it to 120")
    if category not in taxonomy.categories:
        raise ScaffoldError(f"unknown category '{category}'; use one of: {', '.join(taxonomy.categories)}")
    slug = slug or slugify(title)
    if not SLUG_RE.match(slug or ""):
        raise ScaffoldError(f"cannot make a file name from '{title}'; pass --slug with lowercase words and hyphens")
    if not re.fullmatch(r"evergreen|FP20\d\d", applies_to):
        raise ScaffoldError(f"applies_to must be 'evergreen' or a cycle like FP2027, got '{applies_to}'")

    guides, _ = load_guides(content_dir, today)
    path = content_dir / category / f"{slug}.md"
    if not overwrite:
        taken = next((p for p in content_dir.rglob(f"{slug}.md")), None)
        if taken is not None:
            raise ScaffoldError(
                f"a guide called '{slug}' already exists at {taken}; improve that one, or choose another title "
                "or --slug"
            )
        same_title = next((g for g in guides if g.title.casefold() == title.casefold()), None)
        if same_title is not None:
            raise ScaffoldError(f"the title '{title}' is already used by {same_title.path}")

    peers = [g for g in guides if g.category == category]
    tags = _tags(tags, taxonomy, peers, category)
    suggested = not sources
    sources = _sources(sources, peers, category)
    authors = [a for a in (authors or []) if a.strip()] or ["Medical student"]
    summary = " ".join((summary or default_summary(title)).split())

    source_note = (
        f"# Suggested from other {category} guides: keep the ones you checked, add the pages you used.\n"
        if suggested
        else ""
    )
    front = (
        "---\n"
        f"title: {_q(title)}\n"
        f"summary: {_q(summary)}  # what this guide answers, in a sentence or two\n"
        f"category: {category}\n"
        f"tags: [{', '.join(tags)}]  # from content/taxonomy.yml\n"
        f'authors: [{", ".join(_q(a) for a in authors)}]  # your role (e.g. "F2 doctor"), not your name\n'
        f"last_reviewed: {today.isoformat()}  # the date you last checked the facts against the sources\n"
        f"applies_to: {applies_to}  # or the application cycle it describes, e.g. FP2027\n"
        f"{source_note}"
        "sources:\n" + "".join(f"  - title: {_q(t)}\n    url: {_q(u)}\n" for t, u in sources) + "---\n\n"
    )
    text = front + template_body(content_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return NewGuide(path, slug, text, suggested)
