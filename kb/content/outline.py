"""One scan of a guide's body: its headings (level, line, text, anchor) and the sections between them."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kb.errors import Problem

# The heading levels the page's table of contents gives an id (render.py's toc_depth): a section
# search links to must start at one of them.
TOC_LEVELS = (2, 4)

FENCE_RE = re.compile(r"^ {0,3}(```+|~~~+)")
INLINE_CODE_RE = re.compile(r"(`+)(.+?)\1")
COMMENT_RE = re.compile(r"<!--.*?-->", re.S)
# Multi-line, so kb.content.guide counts headings over a whole body with them
HEADING_RE = re.compile(r"^ {0,3}(#{1,6})(?=[ \t]|$)", re.M)
SETEXT_RE = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$", re.M)
LIST_OR_TABLE_RE = re.compile(r"^\s*([-*+]|\d+[.)]|\|)")


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def blank_spans(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """`_blank` for many (start, end) spans in one pass; blanking them one at a time copies the whole text for each."""
    out: list[str] = []
    last = 0
    for start, end in sorted(spans):
        start = max(start, last)
        if start >= end:
            continue
        out.append(text[last:start])
        out.append(re.sub(r"[^\n]", " ", text[start:end]))
        last = end
    out.append(text[last:])
    return "".join(out)


def mask_markdown(body: str) -> tuple[str, int | None]:
    """Blank out fenced code, inline code and HTML comments, keeping every offset in place.

    Returns the masked text and the offset of an unclosed `<!--`, if any.
    """
    lines = body.split("\n")
    out: list[str] = []
    fence: str | None = None
    for line in lines:
        m = FENCE_RE.match(line)
        if fence is None and m:
            fence = m.group(1)[0] * 3
            out.append(" " * len(line))
        elif fence is not None:
            if line.strip().startswith(fence):
                fence = None
            out.append(" " * len(line))
        else:
            out.append(INLINE_CODE_RE.sub(lambda mm: " " * len(mm.group(0)), line))
    joined = "\n".join(out)
    masked = blank_spans(joined, [m.span() for m in COMMENT_RE.finditer(joined)])
    unclosed = masked.find("<!--")
    if unclosed >= 0:
        masked = _blank(masked, unclosed, len(masked))
        return masked, unclosed
    return masked, None


@dataclass(frozen=True)
class Heading:
    """One '#' heading of a guide.

    Attributes:
        level: 1 to 6, the number of '#'.
        text: The heading as written, without the '#'s before and after it.
        index: Its line in the body, from 0.
        line: Its line in the file, from 1.
        anchor: The id the rendered page gives it ("" until `Outline.anchored`, and for levels
            outside TOC_LEVELS).
    """

    level: int
    text: str
    index: int
    line: int
    anchor: str = ""


@dataclass(frozen=True)
class Outline:
    """A guide body's headings and the sections they start, from one scan of its Markdown.

    Code and HTML comments are masked first, so a '#' line inside them is not a heading. The
    chunker splits at these headings and takes each section's anchor from here; the checker's
    heading rules read them; `anchored` pairs them with the rendered page's table of contents.
    """

    lines: tuple[str, ...]
    headings: tuple[Heading, ...]
    underlined: tuple[int, ...]  # body line indexes of text underlined with '===' or '---' (setext headings)
    first_line: int

    @classmethod
    def scan(cls, body: str, first_line: int = 1) -> Outline:
        """Scan `body`, whose first line is line `first_line` of the file."""
        lines = tuple(body.split("\n"))
        masked = mask_markdown(body)[0].split("\n")
        headings = []
        for i, line in enumerate(masked):
            if m := HEADING_RE.match(line):
                # the text from the source line (masking keeps offsets): inline code in a heading is kept
                text = lines[i][m.end(1) :].strip().rstrip("#").strip()
                headings.append(Heading(len(m.group(1)), text, i, first_line + i))
        underlined = tuple(
            i - 1
            for i in range(1, len(masked))
            if SETEXT_RE.match(masked[i])
            and masked[i - 1].strip()
            and not HEADING_RE.match(masked[i - 1])
            and not LIST_OR_TABLE_RE.match(masked[i - 1])
        )
        return cls(lines, tuple(headings), underlined, first_line)

    def sections(self, min_level: int = 1) -> list[tuple[Heading | None, int, int]]:
        """(heading, first line, end line) of each section split at headings of `min_level` or deeper, by body
        line index; the first is the introduction before any of them (heading None). A section's lines
        are `lines[first:end]`, without its heading line."""
        split = [h for h in self.headings if h.level >= min_level]
        starts = [(None, 0), *((h, h.index + 1) for h in split)]
        ends = [h.index for h in split] + [len(self.lines)]
        return [(h, start, end) for (h, start), end in zip(starts, ends, strict=True)]

    def refusals(self, path: str) -> list[Problem]:
        """Headings the page cannot anchor, so search could not link to their sections: levels below
        the table of contents, and underlined (setext) headings the chunker does not split at."""
        problems = [
            Problem(
                path,
                h.line,
                1,
                "error",
                f"level-{h.level} heading: guides use at most four levels",
                "use '##', '###' or '####'",
                "structure.depth",
            )
            for h in self.headings
            if h.level > TOC_LEVELS[1]
        ]
        problems.extend(
            Problem(
                path,
                self.first_line + i,
                1,
                "error",
                "underlined heading: search only splits guides at '## ' headings",
                f"write it as '## {self.lines[i].strip()}' (or leave a blank line before a '---' rule)",
                "structure.setext",
            )
            for i in self.underlined
        )
        return problems

    def anchored(self, toc: Sequence[tuple[int, str, str]], path: str) -> tuple[Outline, Problem | None]:
        """This outline with each heading's anchor from the rendered page's table of contents.

        `toc` is Rendered.headings: (level, anchor, title) in page order. Every heading the chunker
        splits at (level 2 or deeper) must have its entry, in order; otherwise a search result would
        link to the wrong section, and the Problem says where the two first part.
        """
        low, high = TOC_LEVELS
        anchors = iter([anchor for _, anchor, _ in toc])
        headings = tuple(
            dataclasses.replace(h, anchor=next(anchors, "")) if low <= h.level <= high else h for h in self.headings
        )
        split = [h for h in self.headings if h.level >= low]
        if [h.level for h in split] == [level for level, _, _ in toc]:
            return dataclasses.replace(self, headings=headings), None
        # where they part: the first heading whose level differs, or whose page title is not among its words
        k = next(
            (k for k, (h, entry) in enumerate(zip(split, toc, strict=False)) if not _same_heading(h, entry)),
            min(len(split), len(toc)),
        )
        line = split[min(k, len(split) - 1)].line if split else self.first_line
        problem = Problem(
            path,
            line,
            1,
            "error",
            "the page's section anchors stop matching the guide's headings here (is a heading indented, "
            "inside a quote, list or HTML, or missing the space after its '#'s?)",
            "start each heading on its own line with '## ', '### ' or '#### ', outside quotes, lists and HTML",
            "structure.anchors",
        )
        return dataclasses.replace(self, headings=headings), problem


def _letters(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalnum())


def _same_heading(heading: Heading, entry: tuple[int, str, str]) -> bool:
    """Whether a table of contents entry (level, anchor, title) is plausibly this heading: the title is the
    heading's text with its Markdown rendered, so its letters and digits are usually found in the source's.
    Only locates a disagreement already found, so a miss (a link's address) just reports an earlier line."""
    return heading.level == entry[0] and _letters(entry[2]) in _letters(heading.text)
