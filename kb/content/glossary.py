"""The acronym glossary (`content/glossary.yml`): one file feeding search expansion and tooltips."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from kb.content.guide import load_yaml
from kb.errors import ContentError, Problem

# A word as names and queries are split into: letters and digits, with inner apostrophes and hyphens.
WORD_RE = re.compile(r"[\w][\w'’-]*", re.UNICODE)
# A name's first words stand for it when, in the guides, they go on into the name this often.
SHORT_FORM_SHARE = 0.8


@dataclass(frozen=True)
class Term:
    term: str
    expansion: str
    meaning: str
    aliases: tuple[str, ...] = ()
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Glossary:
    terms: tuple[Term, ...]

    @classmethod
    def load(cls, content_dir: Path | str) -> Glossary:
        """Load `glossary.yml` from the content folder; an absent file is an empty glossary."""
        path = Path(content_dir) / "glossary.yml"
        if not path.exists():
            return cls(())
        try:
            data = load_yaml(path.read_text(encoding="utf-8-sig")) or []  # no aliases: an alias bomb is refused
        except OSError as exc:
            raise ContentError(
                [
                    Problem(
                        str(path),
                        0,
                        0,
                        "error",
                        f"cannot read the glossary: {exc.strerror or exc}",
                        "make it a readable file",
                        "glossary.unreadable",
                    )
                ]
            ) from exc
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            mark = getattr(exc, "problem_mark", None)
            raise ContentError(
                [
                    Problem(
                        str(path),
                        mark.line + 1 if mark else 0,
                        0,
                        "error",
                        f"glossary is not valid YAML: {exc}",
                        getattr(exc, "hint", "fix the YAML"),
                        "glossary.yaml",
                    )
                ]
            ) from exc
        problems: list[Problem] = []
        terms: list[Term] = []
        seen: set[str] = set()
        if not isinstance(data, list):
            data = []
            problems.append(
                Problem(
                    str(path),
                    1,
                    1,
                    "error",
                    "glossary must be a list of entries",
                    "see the existing entries",
                    "glossary.type",
                )
            )
        for i, entry in enumerate(data, 1):
            if not isinstance(entry, dict) or not all(
                isinstance(entry.get(k), str) and entry.get(k).strip() for k in ("term", "expansion", "meaning")
            ):
                problems.append(
                    Problem(
                        str(path),
                        0,
                        0,
                        "error",
                        f"entry {i} needs text 'term', 'expansion' and 'meaning'",
                        "complete the entry",
                        "glossary.entry",
                    )
                )
                continue
            lists = {k: entry.get(k) or [] for k in ("aliases", "synonyms")}
            lists = {k: [v] if isinstance(v, str) else v for k, v in lists.items()}
            bad = [
                k
                for k, v in lists.items()
                if not isinstance(v, list) or not all(isinstance(x, str | int | float) for x in v)
            ]
            if bad:
                problems.append(
                    Problem(
                        str(path),
                        0,
                        0,
                        "error",
                        f"entry {i} ('{entry['term']}'): '{bad[0]}' must be a list of text",
                        f"write {bad[0]}: [first, second]",
                        "glossary.entry",
                    )
                )
                continue
            key = entry["term"].strip().casefold()
            if key in seen:
                problems.append(
                    Problem(
                        str(path),
                        0,
                        0,
                        "error",
                        f"term '{entry['term']}' is defined twice",
                        "merge the two entries",
                        "glossary.duplicate",
                    )
                )
                continue
            seen.add(key)
            terms.append(
                Term(
                    entry["term"].strip(),
                    entry["expansion"].strip(),
                    entry["meaning"].strip(),
                    tuple(str(a).strip() for a in lists["aliases"] if str(a).strip()),
                    tuple(str(s).strip() for s in lists["synonyms"] if str(s).strip()),
                )
            )
        if problems:
            raise ContentError(problems)
        return cls(tuple(terms))

    def lookup(self) -> dict[str, Term]:
        """Map of every casefolded term and alias to its entry."""
        table: dict[str, Term] = {}
        for t in self.terms:
            for name in (t.term, *t.aliases):
                table.setdefault(name.casefold(), t)
        return table

    def abbreviations(self) -> list[tuple[str, str]]:
        """(text as written, title) pairs for `<abbr>` tooltips: acronym-like terms only."""
        out = []
        for t in self.terms:
            for name in (t.term, *t.aliases):
                acronym = sum(c.isupper() for c in name) >= 2 or any(c.isdigit() for c in name)
                if re.fullmatch(r"[A-Z][A-Za-z0-9-]+", name) and acronym:
                    out.append((name, t.expansion))
        return out


def _count_word_sequences(wanted: set[tuple[str, ...]], texts: Iterable[str]) -> dict[tuple[str, ...], int]:
    """How often each casefolded word sequence in `wanted` occurs in `texts`."""
    # the lengths of wanted word sequences by their first word: most words start none, so the
    # scan below costs one set lookup per word of text
    starts: dict[str, set[int]] = {}
    for k in wanted:
        starts.setdefault(k[0], set()).add(len(k))
    counts: dict[tuple[str, ...], int] = {}
    for text in texts:
        tokens = [w.casefold() for w in WORD_RE.findall(text)]
        for i, tok in enumerate(tokens):
            for n in starts.get(tok, ()):
                gram = tuple(tokens[i : i + n])
                if len(gram) == n and gram in wanted:
                    counts[gram] = counts.get(gram, 0) + 1
    return counts


def short_forms(
    terms: Iterable[Term], texts: Iterable[str], is_content_word: Callable[[str], bool]
) -> dict[tuple[str, ...], Term]:
    """Clear short forms of long names: "prescribing safety" for Prescribing Safety Assessment.

    Students shorten long names. The first two or more words of a name of three or more words are
    read as the name when, in `texts` (the indexed sections), they continue into that name at least
    SHORT_FORM_SHARE of the time (and appear at least twice); "medical schools" does not stand for
    the Medical Schools Council because the guides mostly use it on its own. A prefix must end in
    a content word ("unit of" is not a short form of anything). Keys are casefolded word tuples.
    """
    names: dict[tuple[str, ...], Term] = {}
    for t in terms:
        for name in (t.term, *t.aliases, t.expansion):
            key = tuple(w.casefold() for w in WORD_RE.findall(name))
            if len(key) >= 3:
                names.setdefault(key, t)
    prefixes: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for key in names:
        for n in range(2, len(key)):
            if is_content_word(key[n - 1]):
                prefixes.setdefault(key[:n], set()).add(key)
    if not prefixes:
        return {}
    counts = _count_word_sequences(set(names) | set(prefixes), texts)
    out: dict[tuple[str, ...], Term] = {}
    for prefix, full_names in prefixes.items():
        found = {names[k].term for k in full_names}
        seen = counts.get(prefix, 0)
        continued = sum(counts.get(k, 0) for k in full_names)
        if len(found) == 1 and seen >= 2 and continued >= SHORT_FORM_SHARE * seen:
            out[prefix] = names[next(iter(full_names))]
    return out
