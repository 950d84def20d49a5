"""The gap loop: questions search could not answer, grouped when they ask the same thing, ranked by demand."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from kb.engines.keyword_index import analyse

# Two questions whose embeddings are at least this close ask the same thing ("night shift survival f1" and
# "surviving night shifts as an f1": 0.79). Measured: no two of the 85 different questions in
# tests/relevance/unanswerable.yml are closer than 0.683 (licensing in Germany and in Sweden).
SAME_QUESTION = 0.75


@dataclass
class Gap:
    """One thing students asked for that no guide answers: its wordings, how often, and where to start."""

    questions: list[tuple[str, int]]  # (wording, searches), most asked first
    not_covered: int = 0
    related: int = 0
    closest: dict | None = None  # {slug, title, category, url} of the nearest guide, if any
    command: str = ""
    vector: np.ndarray | None = field(default=None, repr=False)

    @property
    def asked(self) -> int:
        return sum(n for _, n in self.questions)

    @property
    def question(self) -> str:
        return self.questions[0][0]

    def as_dict(self) -> dict:
        return {
            "question": self.question,
            "asked": self.asked,
            "not_covered": self.not_covered,
            "related": self.related,
            "wordings": [{"query": q, "n": n} for q, n in self.questions],
            "closest": self.closest,
            "command": self.command,
        }


def text_key(query: str) -> str:
    """Questions with the same content words (stemmed, in any order) are the same question."""
    return " ".join(sorted(set(analyse(query)))) or query.strip().casefold()


def group_questions(
    rows: Sequence[dict], encode: Callable[[list[str]], np.ndarray] | None = None, threshold: float = SAME_QUESTION
) -> list[Gap]:
    """Group recorded questions ({query, n, not_covered, related}) that ask the same thing.

    First by normalised text, then, when an encoder is given, by embedding similarity: each group,
    in order of demand, joins the first bigger group whose main wording is at least `threshold`
    similar. Returns groups most asked first.
    """
    by_key: dict[str, Gap] = {}
    for r in rows:
        gap = by_key.setdefault(text_key(r["query"]), Gap([]))
        gap.questions.append((r["query"], int(r["n"])))
        gap.not_covered += int(r.get("not_covered", 0))
        gap.related += int(r.get("related", 0))
    gaps = sorted(by_key.values(), key=lambda g: (-g.asked, g.question))
    for g in gaps:
        g.questions.sort(key=lambda qn: (-qn[1], qn[0]))
    if encode is None or len(gaps) < 2:
        return gaps
    vectors = np.asarray(encode([g.question for g in gaps]), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
    merged: list[Gap] = []
    for g, v in zip(gaps, vectors, strict=True):
        home = next((m for m in merged if float(m.vector @ v) >= threshold), None)
        if home is None:
            g.vector = v
            merged.append(g)
            continue
        home.questions.extend(g.questions)
        home.questions.sort(key=lambda qn: (-qn[1], qn[0]))
        home.not_covered += g.not_covered
        home.related += g.related
    return sorted(merged, key=lambda g: (-g.asked, g.question))


def scaffold_command(question: str, category: str | None) -> str:
    """A ready `scripts/new_guide.py` command that starts a guide titled with the students' own question."""
    title = " ".join(question.split())[:120]
    title = title[:1].upper() + title[1:]
    return f"python scripts/new_guide.py {shlex.quote(title)} --category {shlex.quote(category or 'peer-support')}"


def gap_report(
    rows: Sequence[dict], encode=None, closest: Callable[[str], dict | None] | None = None, limit: int = 20
) -> list[Gap]:
    """The "questions we could not answer" section: grouped, ranked by demand, each with its nearest guide
    and a command that starts the missing one."""
    gaps = group_questions(rows, encode)[:limit]
    for g in gaps:
        g.closest = closest(g.question) if closest else None
        g.command = scaffold_command(g.question, (g.closest or {}).get("category"))
    return gaps


def unanswered_groups(
    rows: Sequence[dict], encode=None, closest: Callable[[str], dict | None] | None = None, limit: int = 20
) -> tuple[list[dict], str]:
    """The report's "questions we could not answer" rows and a note when they are less than complete.

    `encode` may load the model on first use: when it (or `closest`) fails, the questions are still
    grouped by their wording, without closest guides, and the note says why.
    """
    if not rows:
        return [], ""
    try:
        return [g.as_dict() for g in gap_report(rows, encode, closest, limit)], ""
    except Exception as exc:  # no model here: still useful, grouped by wording
        note = (
            f"grouped by wording only, without closest guides: the model could not be loaded ({exc.__class__.__name__})"
        )
        return [g.as_dict() for g in gap_report(rows, None, None, limit)], note


def search_report(store, *, days: int, limit: int, guides: dict[str, str], encode=None, closest=None) -> dict:
    """The content-gap report the CLI prints and the maintainers' page shows: the store's lists (top, zero-result
    and unclicked queries, clicked and never-clicked guides, feedback) and the unanswered questions, grouped.

    `store` is a kb.store.Store; its StoreError propagates (the caller says the database cannot be read).
    """
    report = store.report(days=days, limit=limit, guides=guides)
    report["unanswered"], note = unanswered_groups(store.unanswered(days=days), encode, closest, limit)
    if note:
        report["unanswered_note"] = note
    return report
