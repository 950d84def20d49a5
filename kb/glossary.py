"""The acronym glossary (`content/glossary.yml`): one file feeding search expansion and tooltips."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from kb.errors import ContentError, Problem


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
            data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or []
        except OSError as exc:
            raise ContentError(
                [Problem(str(path), 0, 0, "error", f"cannot read the glossary: {exc.strerror or exc}", "make it a readable file", "glossary.unreadable")]
            ) from exc
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            mark = getattr(exc, "problem_mark", None)
            raise ContentError(
                [Problem(str(path), mark.line + 1 if mark else 0, 0, "error", f"glossary is not valid YAML: {exc}", "fix the YAML", "glossary.yaml")]
            ) from exc
        problems: list[Problem] = []
        terms: list[Term] = []
        seen: set[str] = set()
        if not isinstance(data, list):
            data = []
            problems.append(Problem(str(path), 1, 1, "error", "glossary must be a list of entries", "see the existing entries", "glossary.type"))
        for i, entry in enumerate(data, 1):
            if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) and entry.get(k).strip() for k in ("term", "expansion", "meaning")):
                problems.append(
                    Problem(str(path), 0, 0, "error", f"entry {i} needs text 'term', 'expansion' and 'meaning'", "complete the entry", "glossary.entry")
                )
                continue
            lists = {k: entry.get(k) or [] for k in ("aliases", "synonyms")}
            lists = {k: [v] if isinstance(v, str) else v for k, v in lists.items()}
            bad = [k for k, v in lists.items() if not isinstance(v, list) or not all(isinstance(x, str | int | float) for x in v)]
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
                problems.append(Problem(str(path), 0, 0, "error", f"term '{entry['term']}' is defined twice", "merge the two entries", "glossary.duplicate"))
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
