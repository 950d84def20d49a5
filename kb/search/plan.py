"""Plan: what a query asks for, once: parsed, spelling-corrected and expanded through the glossary."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kb.content.glossary import WORD_RE, Term
from kb.engines.keyword_index import analyse
from kb.engines.spelling import MIN_LENGTH
from kb.search.answer import Wanted
from kb.search.request import SearchRequest

if TYPE_CHECKING:
    from kb.search.pipeline import Generation

# A glossary synonym ("prescribing exam" for PSA) is a near equivalent, not an exact one.
SYNONYM_WEIGHT = 0.7
# Question and function words: every guide heading is a question ("How do I ..."), so these
# words say nothing about which section answers. They stay in what the encoder sees (they carry
# intent there) but do not score keyword matches or heading coverage, unless nothing else is left.
QUERY_STOP_WORDS = frozenset(
    """i i'm im i've ive i'd id i'll me my mine myself u ur how what whats what's why who whom whose which where
    do does did doing don't dont doesn't doesnt didn't is am was were been being isn't wasn't there their they them
    he she his her it's its could should would shall must might about just really actually also so too very any
    anything some something someone anyone please thanks thank hi hello ok okay""".split()
)


@dataclass(frozen=True)
class ParsedQuery:
    raw: str
    words: tuple[str, ...]
    phrases: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join((*self.phrases, *self.words))


def parse_query(raw: str) -> ParsedQuery:
    """Split a query into "quoted phrases" and loose words; everything else is plain text."""
    text = re.sub(r"[\x00-\x1f\x7f]", " ", raw)
    phrases = tuple(p.strip() for p in re.findall(r'"([^"]+)"', text) if p.strip())
    rest = re.sub(r'"[^"]*"', " ", text).replace('"', " ")
    words = tuple(WORD_RE.findall(rest))
    return ParsedQuery(raw, words, phrases)


@dataclass(frozen=True)
class Unit:
    """One thing a query asks about: a plain word, or a glossary concept however it was typed.

    A concept's `forms` are the ways a guide may write it, each with a weight: the term, its
    aliases and its expansion are exact equivalents (1.0), its synonyms near ones. Whichever exact
    form the student typed, the concept searches the same: "PSA" and "prescribing safety
    assessment" are one query.
    """

    text: str
    term: Term | None = None
    forms: tuple[tuple[str, float], ...] = ()
    exact: bool = False  # typed as the term, an alias, the expansion or a clear short form of it

    @property
    def function_word(self) -> bool:
        return self.term is None and self.text.casefold().replace("’", "'") in QUERY_STOP_WORDS

    @property
    def semantic_text(self) -> str:
        """What the encoder sees: acronyms spelled out, in one canonical wording per concept."""
        t = self.term
        if t is None or not self.exact:
            return self.text  # a synonym is the student's own wording: keep it
        return f"{t.expansion} ({t.term})"


def wanted_of(pq: ParsedQuery, units: Sequence[Unit]) -> list[Wanted]:
    """What a query asks about, for coverage: each phrase, content word and glossary concept (any of its forms)."""
    out = [Wanted((frozenset(analyse(p)),)) for p in pq.phrases if analyse(p)]
    for u in units:
        if u.term is not None:
            out.append(Wanted(tuple(frozenset(analyse(form)) for form, _ in u.forms)))
        elif not u.function_word and analyse(u.text):
            out.append(Wanted((frozenset(analyse(u.text)),)))
    return out


def rewrite_query(raw: str, corrections: dict[str, str]) -> str:
    """The query as typed with corrected words swapped in; quoted phrases are left alone."""
    parts = re.split(r'("[^"]*")', raw)
    for i in range(0, len(parts), 2):
        parts[i] = WORD_RE.sub(lambda m: corrections.get(m.group(0), m.group(0)), parts[i])
    return re.sub(r"\s+", " ", "".join(parts)).strip()


@dataclass(frozen=True)
class QueryPlan:
    """A query as the search stages use it.

    Attributes:
        parsed: The query split into phrases and words, as typed.
        units: The words (corrected when spellcheck is on) grouped into plain words and glossary concepts.
        scoring: The units that score keyword matches and heading coverage (function words only if nothing else).
        did_you_mean: The query with likely corrections swapped in, when there are any.
        corrected: True when the corrections were searched instead of the words as typed.
        expansions: The other names of the glossary concepts in the query ("PSA" for "prescribing safety assessment").
        highlight: Words to mark in snippets and on the guide page.
    """

    parsed: ParsedQuery
    units: tuple[Unit, ...]
    scoring: tuple[Unit, ...]
    did_you_mean: str | None
    corrected: bool
    expansions: tuple[str, ...]
    highlight: tuple[str, ...]

    @property
    def phrases(self) -> tuple[str, ...]:
        return self.parsed.phrases

    @functools.cached_property
    def wanted(self) -> list[Wanted]:
        """What the query asks about, for section choice and the answer card's coverage (worked out once)."""
        return wanted_of(self.parsed, self.scoring)


def plan(gen: Generation, request: SearchRequest) -> QueryPlan:
    """Parse the query, correct likely misspellings and find its glossary concepts in this generation."""
    pq = parse_query(request.query)
    # Unknown words with a likely spelling are searched as corrected (spellcheck on) and the
    # page says so, with a link back; with spellcheck off the suggestion is only offered.
    suggestions = corrections(gen, pq) if pq.words else {}
    applied = suggestions if request.spellcheck else {}
    units = gen.units([applied.get(w, w) for w in pq.words])
    expansions: list[str] = []
    for u in units:
        if u.term is not None:
            expansions.extend(f for f in (u.term.expansion, u.term.term) if f.casefold() != u.text.casefold())
    scoring = [u for u in units if not u.function_word] or units
    return QueryPlan(
        parsed=pq,
        units=tuple(units),
        scoring=tuple(scoring),
        did_you_mean=rewrite_query(request.query, suggestions) if suggestions else None,
        corrected=bool(applied),
        expansions=tuple(dict.fromkeys(expansions)),
        highlight=tuple(highlight_terms(pq, scoring)),
    )


def corrections(gen: Generation, pq: ParsedQuery) -> dict[str, str]:
    """Likely intended words for query words the index has never seen (and no glossary form is)."""
    out: dict[str, str] = {}
    for i, w in enumerate(pq.words):
        lw = w.casefold()
        if len(lw) < MIN_LENGTH or not lw.isalpha() or (lw,) in gen._forms or not analyse(lw):
            continue
        if any(ch.isupper() for ch in w[1:]) or (i > 0 and w[0].isupper()):
            continue  # CamelCase, an acronym or a name mid-sentence: an identifier, not a typo
        if lw in gen.vocabulary or gen.keyword.has_term(lw):
            continue
        suggestion = gen.vocabulary.suggest(lw)
        if suggestion:
            out[w] = suggestion
    return out


def highlight_terms(pq: ParsedQuery, units: Sequence[Unit]) -> list[str]:
    """Words to mark in snippets and on the guide page: content words, phrases and exact concept forms."""
    out: list[str] = list(pq.phrases)
    for u in units:
        if u.term is None:
            if analyse(u.text):
                out.append(u.text)
        else:
            out.extend(form for form, weight in u.forms if weight >= 1.0)
    return list(dict.fromkeys(out))
