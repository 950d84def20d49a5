"""Guide -> one Chunk per section of its outline (id "slug#anchor"); long sections split by paragraph."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from kb.content.guide import Guide
from kb.content.outline import TOC_LEVELS, Heading
from kb.content.render import Rendered
from kb.errors import ContentError

MAX_CHARS = 1200


@dataclass(frozen=True)
class Chunk:
    """One searchable passage: a heading section (or part of one) of a guide."""

    id: str
    slug: str
    title: str
    category: str
    tags: tuple[str, ...]
    anchor: str
    heading: str
    heading_path: tuple[str, ...]
    text: str
    position: int

    @property
    def url(self) -> str:
        return f"/guides/{self.slug}#{self.anchor}" if self.anchor else f"/guides/{self.slug}"

    @property
    def embed_text(self) -> str:
        """What the encoder sees: guide title and heading path give the passage its context."""
        path = " > ".join((self.title, *self.heading_path))
        return f"{path}\n{self.text}"

    @property
    def text_hash(self) -> str:
        return hashlib.sha256(self.embed_text.encode("utf-8")).hexdigest()

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "slug": self.slug,
            "title": self.title,
            "category": self.category,
            "tags": list(self.tags),
            "anchor": self.anchor,
            "heading": self.heading,
            "heading_path": list(self.heading_path),
            "text": self.text,
            "position": self.position,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Chunk:
        return cls(
            d["id"],
            d["slug"],
            d["title"],
            d["category"],
            tuple(d["tags"]),
            d["anchor"],
            d["heading"],
            tuple(d["heading_path"]),
            d["text"],
            d["position"],
        )


# Linear-time forms of the obvious patterns (a guide is hostile input): links, images and footnotes
# stop at a blank line, so with kb.content.guide's per-paragraph bracket limit each '[' costs at most a
# short scan; runs of blank lines are collapsed first, so '^\s*' never crosses more than one; the
# table-rule pattern is checked a line at a time with possessive quantifiers (no backtracking).
_IN_PARAGRAPH = r"(?:[^\n]|\n(?![ \t]*\n))"
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)*")
_INLINE = [
    (re.compile(rf"!\[((?:(?!\]){_IN_PARAGRAPH})*)\]\((?:(?!\)){_IN_PARAGRAPH})*\)"), r"\1"),
    (re.compile(rf"\[((?:(?!\]){_IN_PARAGRAPH})+)\]\((?:(?!\)){_IN_PARAGRAPH})*\)"), r"\1"),
    (re.compile(r"<[^<>]+>"), " "),
    (re.compile(r"(\*\*|__|\*|_|`)"), ""),
    (re.compile(r"^\s*!!![ \t]*+\w++[ \t]*+(\"([^\"\n]*)\")?[ \t]*$", re.M), r"\2"),
    (re.compile(r"^\s*[-*+]\s+", re.M), "- "),
    (re.compile(r"^\s*>\s?", re.M), ""),
    (re.compile(r"^(?=[ \t:|-]++$)[ \t:|-](?=[^\n]*\|)[^\n]*$", re.M), ""),
    (re.compile(rf"\[\^(?:(?!\]){_IN_PARAGRAPH})+\]:?"), ""),
]


def plain_text(markdown_text: str) -> str:
    """Markdown source -> readable plain text for indexing and snippets."""
    text = _BLANK_LINES.sub("\n\n", markdown_text)
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    text = text.replace("|", " ")
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def split_text(text: str, max_chars: int) -> list[str]:
    """Cut text into parts of at most `max_chars`, at paragraph breaks, else at a sentence end or a space."""
    if len(text) <= max_chars:
        return [text]
    parts: list[str] = []
    current = ""
    for para in re.split(r"\n\s*\n", text):
        while len(para) > max_chars:  # a single huge paragraph: cut at a sentence or space
            cut = max(para.rfind(". ", 0, max_chars), para.rfind(" ", 0, max_chars))
            cut = cut + 1 if cut > max_chars // 2 else max_chars
            if current:
                parts.append(current)
                current = ""
            parts.append(para[:cut].strip())
            para = para[cut:].strip()
        if current and len(current) + len(para) + 2 > max_chars:
            parts.append(current)
            current = para
        else:
            current = f"{current}\n\n{para}" if current else para
    if current:
        parts.append(current)
    return [p for p in parts if p.strip()]


def chunk_guide(guide: Guide, rendered: Rendered, max_chars: int = MAX_CHARS) -> list[Chunk]:
    """Chunk a guide at the headings of its outline; anchors come from the rendered page, so links always resolve.

    Raises:
        ContentError: The page's table of contents does not give every heading the chunker splits at
            its anchor, in order (a link to a section would land on another).
    """
    outline, problem = guide.outline.anchored(rendered.headings, guide.path)
    if problem is not None:
        raise ContentError([problem])
    chunks: list[Chunk] = []
    path: list[Heading] = []
    for heading, start, end in outline.sections(min_level=TOC_LEVELS[0]):
        text = plain_text("\n".join(outline.lines[start:end]))
        if heading is None:
            text = f"{guide.summary}\n\n{text}".strip()
        else:
            path = [h for h in path if h.level < heading.level] + [heading]
        if not text:
            continue
        for part_no, part in enumerate(split_text(text, max_chars)):
            anchor = heading.anchor if heading else ""
            base = f"{guide.slug}#{anchor}"
            chunks.append(
                Chunk(
                    id=base if part_no == 0 else f"{base}~{part_no + 1}",
                    slug=guide.slug,
                    title=guide.title,
                    category=guide.category,
                    tags=guide.tags,
                    anchor=anchor,
                    heading=plain_text(heading.text) if heading else "",
                    heading_path=tuple(plain_text(h.text) for h in path) if heading else (),
                    text=part,
                    position=len(chunks),
                )
            )
    return chunks
