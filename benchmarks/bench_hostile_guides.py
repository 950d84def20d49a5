#!/usr/bin/env python3
"""Worst-case cost of hostile guides: every place a guide is read, at and just over kb.content.guide's limits.

    python benchmarks/bench_hostile_guides.py               # every case (a few minutes on 2 cores)
    python benchmarks/bench_hostile_guides.py brackets-16 yaml-aliases   # named cases only
    python benchmarks/bench_hostile_guides.py --list

Each case is one guide (valid front matter, a hostile body or front matter, about as large as the
size limit allows) in a copy of the fixture content folder. A child process, under a memory cap and
a timeout, times what the validator, the build and the site do with it: `load_guides` (the loader
all three share), `check_content` without the embedding model, `render_markdown` with no time
budget (the true cost) and with the site's glossary, and `chunk_guide`. It prints one row per case
with seconds, peak memory and the first message. Figures vary with the machine and its load; the
point is that no case costs more than a few seconds or a few hundred MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kb.content import guide as kc  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "content"
ROOM = kc.MAX_GUIDE_BYTES - 1_000  # body bytes that fit beside the front matter
FRONT = """---
title: "Hostile guide"
summary: "A guide built to be expensive."
category: psa
tags: [psa]
authors: ["Tester"]
last_reviewed: 2026-11-01
applies_to: evergreen
sources:
  - title: "PSA"
    url: "https://www.prescribingsafetyassessment.ac.uk/aboutpsa"
---

"""


def fill(unit: str, room: int = ROOM, head: str = "", tail: str = "") -> str:
    """`unit` repeated to fill the room left after `head` and `tail`, within the line limits.

    A unit without a newline is wrapped onto lines just under the line-length limit (one
    paragraph, as Markdown sees it; `head` and `tail` get lines of their own); a unit with
    newlines stops short of the line-count limit.
    """
    room = max(room - len(head) - len(tail), len(unit))
    if "\n" in unit:
        n = min(room // len(unit), (kc.MAX_LINES - 20 - head.count("\n") - tail.count("\n")) // unit.count("\n"))
        return head + unit * max(n, 1) + tail
    per_line = max((kc.MAX_LINE_CHARS - 100) // len(unit), 1)
    lines = room // (per_line * len(unit) + 1)
    rest = (room - lines * (per_line * len(unit) + 1)) // len(unit)
    body = "\n".join([unit * per_line] * lines + ([unit * rest] if rest else []))
    return "\n".join(part for part in (head, body, tail) if part)


def paragraphs(unit: str, per: int) -> str:
    """Paragraphs of `per` units each (wrapped onto lines within the length limit), to fill the room."""
    per_line = max((kc.MAX_LINE_CHARS - 100) // len(unit), 1)
    lines = [unit * min(per_line, per - i) for i in range(0, per, per_line)]
    return fill("\n".join(lines) + "\n\n")


def nested_list(depth: int) -> str:
    return "".join("    " * i + "- item\n" for i in range(depth))


B, L, H, N = kc.MAX_BRACKET_DEPTH, kc.MAX_HTML_TAGS, kc.MAX_HEADINGS, kc.MAX_NESTING
WORDS = "the quick brown fox jumps over the lazy dog "
BODIES: dict[str, Callable[[], str]] = {
    # brackets: Python-Markdown scans to the end of the paragraph for each unclosed '[' or '('
    "brackets-40000": lambda: "x " + "[" * 40_000 + "x" + "]" * 40_000,
    f"brackets-{B}-one-paragraph": lambda: fill("a ", head="[" * B + " ", tail="\n"),
    f"parens-{B}-one-paragraph": lambda: fill("a ", head="[a](" * B + " ", tail="\n"),
    f"brackets-{B}-per-paragraph": lambda: fill("[" * B + "a\n\n"),
    "escaped-close": lambda: fill("[\\]"),
    f"images-{B}-per-paragraph": lambda: fill("![a " * B + "\n\n"),
    f"link-paren-{B}-per-paragraph": lambda: fill("[a](" * B + "\n\n"),
    f"reference-{B}-per-paragraph": lambda: fill("[a][" * B + "\n\n"),
    "unclosed-bracket-per-paragraph": lambda: fill("[a\n\n"),
    "footnote-ref-per-paragraph": lambda: fill("[^a\n\n"),
    "link-paren-per-paragraph": lambda: fill("[a](\n\n"),
    "matched-brackets": lambda: paragraphs("[a] ", kc.MAX_MARKUP_PER_PARAGRAPH),
    "many-links": lambda: paragraphs("[a](https://example.org/x) ", kc.MAX_MARKUP_PER_PARAGRAPH),
    "nested-matched-brackets": lambda: paragraphs("[" * B + "a" + "]" * B + " ", kc.MAX_MARKUP_PER_PARAGRAPH // B),
    # HTML: html.parser scans to the next '>' for each tag start
    f"html-{L}-open-tags": lambda: fill(WORDS, head="<a " * L),
    f"html-{L}-tags-paragraphs": lambda: fill(WORDS + "\n\n", head="<a\n\n" * L),
    f"html-{L}-comments-unclosed": lambda: fill(WORDS, head="<!--" * L),
    "html-too-many": lambda: fill("<a "),
    "lt-digits": lambda: fill("<3 "),
    "lt-space-paragraphs": lambda: fill("< a\n\n"),
    # nesting: one recursion per level
    "list-300": lambda: nested_list(300),
    f"list-{N}-repeated": lambda: fill(nested_list(N) + "\n"),
    f"quote-{N}-repeated": lambda: fill("> " * N + "x\n\n"),
    "quote-10000": lambda: ">" * 10_000 + " x\n",
    "list-markers-one-line": lambda: fill("- " * N + "x\n\n"),
    "admonitions-nested": lambda: "".join("    " * i + "!!! note\n\n" for i in range(40)) + "x\n",
    "divs-nested": lambda: fill("<div>", room=5 * L),
    # headings and sections
    f"headings-{H}": lambda: "".join(f"## Section {i}\n\n{WORDS * 20}\n\n" for i in range(H)),
    "headings-10000": lambda: fill("## h\n\nx\n\n"),
    "setext-10000": lambda: fill("h\n-\n\n"),
    "heading-long-spaces": lambda: "## a" + " " * (ROOM - 10) + "x\n",
    "heading-hashes": lambda: fill("## a #", tail=" x\n"),
    # whitespace and line shapes the regexes meet
    "newlines": lambda: "a" + "\n" * ROOM + "b",
    "blank-space-lines": lambda: fill("   \n"),
    "tabs": lambda: fill("\t"),
    "colon-lines": lambda: fill(": \n"),
    "pipe-lines": lambda: fill("|\n"),
    "pipes-one-line": lambda: fill("|", tail="x\n"),
    "dash-lines": lambda: fill("- \n"),
    "one-long-line": lambda: fill(WORDS, tail="\n"),
    "backslashes": lambda: fill("\\"),
    "escapes-at-markup-limit": lambda: paragraphs("\\\\ ", kc.MAX_MARKUP_PER_PARAGRAPH // 2),
    "code-spans-at-markup-limit": lambda: paragraphs("`a` ", kc.MAX_MARKUP_PER_PARAGRAPH // 2),
    "emphasis-at-markup-limit": lambda: paragraphs("*a* ", kc.MAX_MARKUP_PER_PARAGRAPH // 2),
    "entities-at-markup-limit": lambda: paragraphs("&amp; ", kc.MAX_MARKUP_PER_PARAGRAPH),
    "line-breaks-at-markup-limit": lambda: paragraphs("a  \n", kc.MAX_MARKUP_PER_PARAGRAPH),
    "lines-over": lambda: "a\n" * (kc.MAX_LINES + 10),
    "long-line-over": lambda: "a" * (kc.MAX_LINE_CHARS + 10) + "\n",
    "lines-at-limit": lambda: fill(WORDS[:40] + "\n"),
    "paragraphs-at-limit": lambda: fill("a\n\n"),
    "list-items-at-limit": lambda: fill("- a\n"),
    # inline syntax
    "emphasis-mix": lambda: fill("*a _b "),
    "stars": lambda: fill("*"),
    "underscores": lambda: fill("_"),
    "backticks": lambda: fill("`"),
    "backtick-pairs": lambda: fill("``a "),
    "backtick-runs": lambda: "".join("`" * i + "a " for i in range(1, 440)),
    "entities": lambda: fill("&#x41; "),
    "autolinks": lambda: fill("<https://example.org/a> "),
    "http-links": lambda: fill("http://example.org/a "),
    "attr-lists": lambda: fill("a\n{: #x .y }\n\n"),
    "admonition-titles": lambda: fill('!!! note "a\n\n'),
    "footnotes-over": lambda: fill("a[^1] ", tail="\n\n[^1]: note\n"),
    f"footnotes-{kc.MAX_FOOTNOTE_REFS}": lambda: (
        fill(WORDS) + " " + "a[^1] " * (kc.MAX_FOOTNOTE_REFS - 1) + "\n\n[^1]: note\n"
    ),
    "glossary-terms-dense": lambda: fill("PSA UKFPO SJT "),
    "footnote-defs": lambda: fill("[^a]: x\n"),
    "abbreviations": lambda: "".join(f"*[A{i}]: x\n" for i in range(8000)) + fill("A1 A2 A3 ", room=ROOM // 2),
    "table-wide": lambda: "|a" * 2_400 + "|\n" + "|-" * 2_400 + "|\n" + ("|a" * 2_400 + "|\n") * 18,
    "table-rows": lambda: "|a|b|\n|-|-|\n" + fill("|a|b|\n"),
    "fence-unclosed": lambda: "```\n" + nested_list(300),
    # the checker's own passes
    "broken-anchors": lambda: "## A\n\nx\n\n" + paragraphs("[x](#nope) ", kc.MAX_MARKUP_PER_PARAGRAPH),
    "broken-guides": lambda: paragraphs("[x](/guides/nope) ", kc.MAX_MARKUP_PER_PARAGRAPH),
    "undefined-references": lambda: paragraphs("[x][nope] ", kc.MAX_MARKUP_PER_PARAGRAPH // 2),
    "acronyms": lambda: fill(
        " ".join(f"Q{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}{chr(65 + i // 676 % 26)}" for i in range(ROOM // 5))[
            : kc.MAX_LINE_CHARS - 200
        ]
        + "\n"
    ),
    "todo": lambda: fill("TODO "),
    "dated-claims": lambda: fill("FP2026 October 2025 "),
    "raw-tags": lambda: fill("<u>x</u> ", room=9 * L),
}
FRONT_MATTERS: dict[str, Callable[[], str]] = {
    "yaml-aliases": lambda: (
        '---\na: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
        + "title: *i\napplies_to: *i\n---\n\nx\n"
    ),
    "yaml-deep": lambda: "---\ntitle: " + "[" * 5_000 + "\n---\n\nx\n",
    "yaml-big-int": lambda: "---\ntitle: " + "1" * 5_000 + "\n---\n\nx\n",
    "yaml-many-tags": lambda: FRONT.replace("tags: [psa]", "tags:\n" + fill("  - nope\n")),
    "yaml-many-sources": lambda: FRONT.replace(
        "sources:\n", "sources:\n" + fill('  - title: "x"\n    url: "https://example.org/"\n')
    ),
    "yaml-long-title": lambda: FRONT.replace('title: "Hostile guide"', 'title: "' + "x" * ROOM + '"'),
    "yaml-tags-at-size-limit": lambda: FRONT.replace(
        "tags: [psa]", "tags:\n" + fill("  - nope\n", room=kc.MAX_FRONT_MATTER_BYTES - 400)
    ),
    "yaml-sources-at-size-limit": lambda: FRONT.replace(
        "sources:\n",
        "sources:\n" + fill('  - title: "x"\n    url: "https://example.org/"\n', room=kc.MAX_FRONT_MATTER_BYTES - 400),
    ),
    "yaml-block-nesting": lambda: "---\ntitle:\n  " + "- " * 4_000 + "x\n---\n\nx\n",
    "yaml-flow-at-depth-limit": lambda: FRONT.replace(
        "tags: [psa]", "tags: " + fill("[" * 9 + "psa" + "]" * 9 + ", ", room=9_000, head="[", tail="]")
    ),
}


def case_text(name: str) -> str:
    if name in FRONT_MATTERS:
        return FRONT_MATTERS[name]()
    return FRONT + BODIES[name]()


def child(name: str, folder: str) -> None:
    """Run in a child process: time each reader on the guide and print one JSON line."""
    from kb.content.chunking import chunk_guide
    from kb.content.glossary import Glossary
    from kb.content.guide import load_guides
    from kb.content.render import render_markdown
    from kb.errors import KBError
    from kb.tools.validate import CheckOptions, check_content

    content = Path(folder)
    out: dict = {"case": name, "bytes": len((content / "psa" / "hostile-guide.md").read_bytes())}

    def timed(stage: str, fn: Callable):
        started = time.perf_counter()
        try:
            result = fn()
        except KBError as exc:
            out[stage + "_error"] = exc.message[:200]
            result = None
        out[stage] = round(time.perf_counter() - started, 2)
        return result

    guides, problems = timed("load", lambda: load_guides(content))
    hostile = [g for g in guides if g.slug == "hostile-guide"]
    mine = [p for p in problems if "hostile-guide" in p.path and p.level == "error"]
    out["message"] = mine[0].format().split("hostile-guide.md", 1)[-1][:160] if mine else ""
    out["message_chars"] = max((len(p.format()) for p in mine), default=0)
    report = timed("check", lambda: check_content(content, options=CheckOptions(duplicates=False)))
    if report is not None:
        out["check_problems"] = sum("hostile-guide" in p.path for p in report.problems)
    if hostile:
        g = hostile[0]
        rendered = timed("render", lambda: render_markdown(g.body, budget=None))
        glossary = Glossary.load(content)
        timed("page", lambda: render_markdown(g.body, glossary, budget=None))
        if rendered is not None:
            chunks = timed("chunk", lambda: chunk_guide(g, rendered))
            out["chunks"] = len(chunks or [])
    out["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out))


def run(name: str, timeout: float, memory_mb: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        content = Path(tmp) / "content"
        shutil.copytree(FIXTURES, content)
        (content / "psa" / "hostile-guide.md").write_text(case_text(name), encoding="utf-8")

        def cap() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20, memory_mb * 2**20))

        started = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", name, str(content)],
                capture_output=True,
                text=True,
                timeout=timeout,
                preexec_fn=cap,
                cwd=tmp,
            )
        except subprocess.TimeoutExpired:
            return {"case": name, "failed": f"still running after {timeout:.0f} s"}
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return {
                "case": name,
                "failed": f"rc {proc.returncode} after {time.perf_counter() - started:.1f} s: {tail[:160]}",
            }
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per case before it counts as hung")
    parser.add_argument("--memory-mb", type=int, default=3000, help="address-space cap per case")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    names = args.cases or [*BODIES, *FRONT_MATTERS]
    if args.list:
        print("\n".join(names))
        return 0
    unknown = [n for n in names if n not in BODIES and n not in FRONT_MATTERS]
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}; see --list")
    print(
        f"{'case':34} {'bytes':>8} {'load':>5} {'check':>6} {'render':>6} {'page':>5} {'chunk':>5} {'MB':>5}  "
        "first error"
    )
    worst = 0.0
    for name in names:
        r = run(name, args.timeout, args.memory_mb)
        if "failed" in r:
            print(f"{name:34} FAILED: {r['failed']}", flush=True)
            worst = float("inf")
            continue
        cells = [
            f"{r.get(k, ''):>{w}}" for k, w in (("load", 5), ("check", 6), ("render", 6), ("page", 5), ("chunk", 5))
        ]
        note = r.get("message") or r.get("render_error") or r.get("check_error") or ""
        print(f"{name:34} {r['bytes']:>8} {' '.join(cells)} {r['max_rss_mb']:>5}  {note}", flush=True)
        worst = max(worst, *(r.get(k, 0) for k in ("load", "check", "render", "page", "chunk")))
    print(f"slowest single step: {worst:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
