"""Relevance evaluation: labelled queries, BEIR datasets as guides, nDCG/MRR/Recall per search mode."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kb.content.chunking import Chunk
from kb.content.guide import MAX_LINE_CHARS
from kb.errors import ContentError, Problem
from kb.search.request import SearchRequest

K = 10
BEIR_CATEGORY = "corpus"
BEIR_TAG = "beir"
TITLE_MAX, SUMMARY_MAX = 120, 300  # the guide schema's limits (kb/content/guide.py)


@dataclass(frozen=True)
class Judged:
    """One labelled query: which guides answer it and, where one does, which sections.

    `grades` gives each relevant guide's grade (1 for the own set, the qrels score for BEIR);
    a guide whose first shown section is one of its `anchors` earns one extra point of gain.
    """

    qid: str
    query: str
    grades: dict[str, int]
    anchors: dict[str, frozenset[str]] = field(default_factory=dict)
    kinds: tuple[str, ...] = ()
    answer: str | None = None  # a short phrase the answer must contain ("200 marks")

    @property
    def half(self) -> str:
        return half_of(self.query)

    def gain(self, slug: str, first_anchor: str | None) -> int:
        grade = self.grades.get(slug, 0)
        if grade <= 0:
            return 0
        return grade + (1 if first_anchor is not None and first_anchor in self.anchors.get(slug, ()) else 0)

    def ideal_gains(self) -> list[int]:
        return sorted((g + (1 if self.anchors.get(s) else 0) for s, g in self.grades.items() if g > 0), reverse=True)


def _read_yaml(path: Path, what: str):
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except (OSError, yaml.YAMLError) as exc:
        raise ContentError(
            [Problem(str(path), 0, 0, "error", f"cannot read {what}: {exc}", "fix the YAML", "eval.yaml")]
        ) from exc


def half_of(query: str) -> str:
    """ "tune" or "test": the fixed split of every labelled set, by a hash of the query's text.

    Fixed once, before any tuning, and independent of file order, so adding a query never moves
    another from one half to the other. Thresholds and weights are tuned on "tune" only.
    """
    digest = hashlib.sha256(" ".join(query.casefold().split()).encode("utf-8")).digest()
    return "tune" if digest[0] % 2 == 0 else "test"


@dataclass(frozen=True)
class Unanswerable:
    """A student question no guide answers (yet): search should say so, or at most offer related guides."""

    qid: str
    query: str
    area: str

    @property
    def half(self) -> str:
        return half_of(self.query)


def load_unanswerable(path: Path | str) -> list[Unanswerable]:
    """Read tests/relevance/unanswerable.yml; raise ContentError on bad entries."""
    path = Path(path)
    data = _read_yaml(path, "the unanswerable queries")
    out, problems, seen = [], [], set()
    for i, entry in enumerate(data if isinstance(data, list) else [], 1):
        q = entry.get("q") if isinstance(entry, dict) else None
        area = entry.get("area") if isinstance(entry, dict) else None
        if not isinstance(q, str) or not q.strip() or not isinstance(area, str):
            problems.append(
                Problem(
                    str(path),
                    0,
                    0,
                    "error",
                    f"entry {i} needs a text 'q' and an 'area'",
                    "see the file's header",
                    "eval.entry",
                )
            )
            continue
        if q.casefold() in seen:
            problems.append(
                Problem(str(path), 0, 0, "error", f"query '{q}' appears twice", "keep one", "eval.duplicate")
            )
        seen.add(q.casefold())
        out.append(Unanswerable(f"u{i}", q, area))
    if problems or not isinstance(data, list):
        raise ContentError(
            problems
            or [
                Problem(
                    str(path),
                    1,
                    1,
                    "error",
                    "the unanswerable queries must be a list",
                    "see the file's header",
                    "eval.type",
                )
            ]
        )
    return out


# ---- metrics (pure) ---------------------------------------------------------------------------
def dcg(gains: Sequence[float], k: int = K) -> float:
    """Discounted cumulative gain with linear gains, as trec_eval and BEIR compute it."""
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]))


def ndcg_at_k(gains: Sequence[float], ideal: Sequence[float], k: int = K) -> float:
    """nDCG@k of a ranked list of gains against the ideal gains (any order); 0 when nothing is relevant."""
    best = dcg(sorted(ideal, reverse=True), k)
    return dcg(gains, k) / best if best > 0 else 0.0


def mrr_at_k(relevant_flags: Sequence[bool], k: int = K) -> float:
    """Reciprocal rank of the first relevant result within the top k, else 0."""
    for i, flag in enumerate(relevant_flags[:k], 1):
        if flag:
            return 1.0 / i
    return 0.0


def recall_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Share of the relevant ids found in the top k (0 when nothing is relevant)."""
    rel = set(relevant)
    if not rel:
        return 0.0
    return len(rel & set(ranked[:k])) / len(rel)


# ---- labelled set ------------------------------------------------------------------------------
def load_judgements(path: Path | str) -> list[Judged]:
    """Read a labelled query file (see tests/relevance/student_queries.yml); raise ContentError on bad entries."""
    path = Path(path)
    data = _read_yaml(path, "the labelled queries")
    problems: list[Problem] = []
    out: list[Judged] = []
    seen: set[str] = set()
    for i, entry in enumerate(data if isinstance(data, list) else [], 1):
        q = entry.get("q") if isinstance(entry, dict) else None
        rel = entry.get("relevant") if isinstance(entry, dict) else None
        if not isinstance(q, str) or not q.strip() or not isinstance(rel, dict) or not rel:
            problems.append(
                Problem(
                    str(path),
                    0,
                    0,
                    "error",
                    f"entry {i} needs a text 'q' and a non-empty 'relevant' mapping",
                    "see the file's header",
                    "eval.entry",
                )
            )
            continue
        if q.casefold() in seen:
            problems.append(
                Problem(
                    str(path), 0, 0, "error", f"query '{q}' appears twice", "merge the two entries", "eval.duplicate"
                )
            )
        seen.add(q.casefold())
        kinds = entry.get("kind") or ()
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        anchors = {str(slug): frozenset(str(a) for a in (anc or ())) for slug, anc in rel.items()}
        answer = entry.get("answer")
        out.append(
            Judged(
                f"q{i}",
                q,
                {slug: 1 for slug in anchors},
                anchors,
                kinds,
                answer if isinstance(answer, str) and answer.strip() else None,
            )
        )
    if not isinstance(data, list):
        problems.append(
            Problem(
                str(path), 1, 1, "error", "the labelled queries must be a list", "see the file's header", "eval.type"
            )
        )
    if problems:
        raise ContentError(problems)
    return out


def check_judgements(judged: Sequence[Judged], chunks: Iterable[Chunk]) -> list[str]:
    """Every slug and anchor named by the judgements must exist in the indexed guides."""
    anchors: dict[str, set[str]] = {}
    for c in chunks:
        anchors.setdefault(c.slug, set()).add(c.anchor)
    problems = []
    for j in judged:
        for slug, wanted in j.anchors.items():
            if slug not in anchors:
                problems.append(f"{j.query!r}: no guide called '{slug}'")
                continue
            problems.extend(
                f"{j.query!r}: guide '{slug}' has no section '#{a}'" for a in sorted(wanted - anchors[slug])
            )
    return problems


# ---- BEIR datasets --------------------------------------------------------------------------------
@dataclass(frozen=True)
class BeirSet:
    name: str
    corpus_path: Path
    judged: list[Judged]
    doc_count: int


def _jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def beir_slug(doc_id: str) -> str:
    """A guide slug for a BEIR document id (lowercase letters, digits and hyphens)."""
    return "doc-" + (re.sub(r"[^a-z0-9]+", "-", doc_id.lower()).strip("-") or "x")


def load_beir(folder: Path | str, split: str = "test") -> BeirSet:
    """Read a BEIR folder: corpus.jsonl, queries.jsonl and qrels/<split>.tsv (header line first)."""
    folder = Path(folder)
    missing = [
        name for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv") if not (folder / name).is_file()
    ]
    if missing:
        raise ContentError(
            [
                Problem(
                    str(folder),
                    0,
                    0,
                    "error",
                    f"not a BEIR folder: missing {', '.join(missing)}",
                    "pass a folder with corpus.jsonl, queries.jsonl and qrels/",
                    "eval.beir",
                )
            ]
        )
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            parts = line.rstrip("\n").split("\t")
            if n == 0 and not parts[-1].strip().lstrip("-").isdigit():
                continue  # header
            if len(parts) >= 3:
                qrels.setdefault(parts[0], {})[beir_slug(parts[1])] = int(parts[2])
    queries = {str(q["_id"]): q["text"] for q in _jsonl(folder / "queries.jsonl") if str(q["_id"]) in qrels}
    judged = [
        Judged(qid, queries[qid], grades)
        for qid, grades in qrels.items()
        if qid in queries and any(g > 0 for g in grades.values())
    ]
    doc_count = sum(1 for _ in _jsonl(folder / "corpus.jsonl"))
    return BeirSet(folder.name, folder / "corpus.jsonl", judged, doc_count)


def _cut(text: str, limit: int) -> str:
    """Cut text at a word boundary to at most `limit` characters, with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip(" ,;:.-") + "…"


def _prose(text: str, width: int = MAX_LINE_CHARS // 2) -> str:
    """One paragraph of plain prose as guide lines: a line over the guide limit is wrapped at spaces
    (Markdown joins the lines again), and no line may read as a heading, quote or list."""
    fits = len(text) <= MAX_LINE_CHARS  # most abstracts: one line, exactly as before
    lines = [text] if fits else textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
    # a backslash escapes Markdown punctuation: '\\#' is a hash, '12\\.' a number, never a heading or list
    lines = [re.sub(r"^(\d+)([.)]\s)", r"\1\\\2", line) for line in lines]
    return "\n".join("\\" + line if re.match(r"[#>=|+*-]", line) else line for line in lines)


def beir_to_content(corpus_path: Path | str, dest: Path | str) -> int:
    """Write a BEIR corpus as guides: dest/<category>/<slug>.md plus taxonomy.yml.

    Each document becomes one guide: its title is the guide title (cut to the schema's 120
    characters), the full title is the summary and the abstract is the body. The site indexes a
    guide's introduction as summary + text, so the introduction reads as the document does, title
    then abstract. No headings are invented: the site's own chunker splits long abstracts by
    paragraph and sentence. Returns the number of guides written.
    """
    dest = Path(dest)
    folder = dest / BEIR_CATEGORY
    folder.mkdir(parents=True, exist_ok=True)
    taxonomy = {
        "categories": {
            BEIR_CATEGORY: {"title": "Corpus", "description": "Documents of a BEIR dataset, one guide each."}
        },
        "tags": [BEIR_TAG],
    }
    (dest / "taxonomy.yml").write_text(yaml.safe_dump(taxonomy), encoding="utf-8")
    titles: set[str] = set()
    count = 0
    for doc in _jsonl(Path(corpus_path)):
        doc_id = str(doc["_id"])
        slug = beir_slug(doc_id)
        full = re.sub(r"\s+", " ", str(doc.get("title") or "")).strip() or f"Document {doc_id}"
        title = _cut(full, TITLE_MAX)
        if title.casefold() in titles:  # titles must be unique: tell duplicates apart by id
            suffix = f" [{doc_id}]"
            title = _cut(full, TITLE_MAX - len(suffix)) + suffix
        titles.add(title.casefold())
        summary = _cut(full, SUMMARY_MAX)
        body = _prose(re.sub(r"\s+", " ", str(doc.get("text") or "")).strip() or full)
        meta = {
            "title": title,
            "summary": summary,
            "category": BEIR_CATEGORY,
            "tags": [BEIR_TAG],
            "authors": ["BEIR corpus"],
            "last_reviewed": "2020-01-01",
            "applies_to": "evergreen",
            "sources": [{"title": "BEIR benchmark", "url": "https://github.com/beir-cellar/beir"}],
        }
        text = (
            "---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, width=10_000) + "---\n\n" + body + "\n"
        )
        (folder / f"{slug}.md").write_text(text, encoding="utf-8")
        count += 1
    return count


# ---- running an evaluation -------------------------------------------------------------------------
@dataclass
class QueryResult:
    qid: str
    query: str
    ranked: list[tuple[str, str]]  # (slug, first section's anchor) per guide, best first
    ndcg: float
    rr: float
    recall5: float
    recall10: float
    section_top: bool | None  # the top guide's first section is an answering one (None: no anchors)
    ms: float
    did_you_mean: str | None = None
    coverage: str | None = None  # the verdict the site gave
    card: str | None = None  # the answer card's text, when one was shown


@dataclass
class ModeScores:
    mode: str
    results: list[QueryResult]

    def _mean(self, values: Iterable[float]) -> float:
        values = list(values)
        return statistics.fmean(values) if values else 0.0

    def only(self, qids: set[str]) -> ModeScores:
        return ModeScores(self.mode, [r for r in self.results if r.qid in qids])

    def summary(self) -> dict[str, float]:
        r = self.results
        sections = [q.section_top for q in r if q.section_top is not None]
        return {
            "ndcg@10": round(self._mean(q.ndcg for q in r), 4),
            "mrr@10": round(self._mean(q.rr for q in r), 4),
            "recall@5": round(self._mean(q.recall5 for q in r), 4),
            "recall@10": round(self._mean(q.recall10 for q in r), 4),
            "section@1": round(self._mean(float(s) for s in sections), 4) if sections else None,
            "latency_ms": round(self._mean(q.ms for q in r), 2),
            "p95_ms": round(sorted(q.ms for q in r)[max(0, math.ceil(0.95 * len(r)) - 1)], 2) if r else 0.0,
            "queries": len(r),
        }


def score_query(
    j: Judged, ranked: Sequence[tuple[str, str]], ms: float = 0.0, k: int = K, did_you_mean: str | None = None
) -> QueryResult:
    """Score one ranked list of (guide slug, first section anchor) against a judgement."""
    ranked = list(ranked)[:k]
    gains = [j.gain(slug, anchor) for slug, anchor in ranked]
    slugs = [s for s, _ in ranked]
    relevant = [s for s, g in j.grades.items() if g > 0]
    section_top = None
    if any(j.anchors.values()):
        section_top = bool(ranked) and ranked[0][1] in j.anchors.get(ranked[0][0], ())
    return QueryResult(
        j.qid,
        j.query,
        ranked,
        ndcg_at_k(gains, j.ideal_gains(), k),
        mrr_at_k([j.grades.get(s, 0) > 0 for s in slugs], k),
        recall_at_k(slugs, relevant, 5),
        recall_at_k(slugs, relevant, 10),
        section_top,
        ms,
        did_you_mean,
    )


def evaluate(
    searcher,
    judged: Sequence[Judged],
    modes: Sequence[str] = ("keyword", "semantic", "hybrid"),
    k: int = K,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, ModeScores]:
    """Run every judged query through `searcher.search` in each mode, exactly as the site does.

    The ranked list is the guides in the order the site shows them (each guide ranked by its best
    section); the first section shown under a guide is its deep link.
    """
    out: dict[str, ModeScores] = {}
    for mode in modes:
        results = []
        for n, j in enumerate(judged, 1):
            started = time.perf_counter()
            response = searcher.search(SearchRequest(j.query, limit=k, mode=mode))
            ms = (time.perf_counter() - started) * 1000
            ranked = [(g.slug, g.hits[0].anchor) for g in response.groups]
            result = score_query(j, ranked, ms, k, response.did_you_mean)
            result.coverage = response.coverage.verdict
            result.card = response.answer.text if response.answer else None
            results.append(result)
            if progress:
                progress(mode, n)
        out[mode] = ModeScores(mode, results)
    return out


def phrase_in(phrase: str, text: str) -> bool:
    """Whether `text` contains `phrase`, ignoring case, punctuation and spacing."""

    def norm(s: str) -> str:
        return " " + " ".join(re.findall(r"\w+", s.casefold())) + " "

    return norm(phrase) in norm(text)


def verdicts(searcher, items: Sequence[Unanswerable], mode: str = "hybrid", k: int = K) -> dict[str, str]:
    """The coverage verdict the site gives each unanswerable question, by its id."""
    out = {}
    for u in items:
        response = searcher.search(SearchRequest(u.query, limit=k, mode=mode))
        out[u.qid] = response.coverage.verdict
    return out


def answer_summary(
    judged: Sequence[Judged], scores: ModeScores, unanswerable: Sequence[Unanswerable], given: dict[str, str], half: str
) -> dict:
    """Per half: card accuracy, the verdicts on answerable and unanswerable questions, section@1 and nDCG@10."""
    mine = {j.qid: j for j in judged if j.half == half}
    results = [r for r in scores.results if r.qid in mine]
    phrased = [r for r in results if mine[r.qid].answer]
    unans = [u for u in unanswerable if u.half == half]

    def share(flags: list[bool]) -> float | None:
        return round(sum(flags) / len(flags), 4) if flags else None

    base = scores.only(set(mine)).summary()
    return {
        "answerable": len(results),
        "with_phrase": len(phrased),
        "unanswerable": len(unans),
        "card_shown": share([r.card is not None for r in results]),
        "card_correct": share([r.card is not None and phrase_in(mine[r.qid].answer, r.card) for r in phrased]),
        "answerable_not_covered": share([r.coverage == "not_covered" for r in results]),
        "unanswerable_flagged": share([given.get(u.qid) in ("not_covered", "related") for u in unans]),
        "unanswerable_not_covered": share([given.get(u.qid) == "not_covered" for u in unans]),
        "section@1": base["section@1"],
        "ndcg@10": base["ndcg@10"],
        "mrr@10": base["mrr@10"],
    }


# ---- the command behind scripts/eval_search.py --------------------------------------------------------
MODE_ORDER = ("keyword", "semantic", "hybrid")
DEFAULT_QUERIES = Path(__file__).resolve().parents[2] / "tests" / "relevance" / "student_queries.yml"
DEFAULT_UNANSWERABLE = DEFAULT_QUERIES.parent / "unanswerable.yml"


def format_table(title: str, scores: dict[str, ModeScores]) -> str:
    """The side-by-side table the command prints."""
    lines = [
        title,
        f"{'mode':<10}{'nDCG@10':>9}{'MRR@10':>9}{'R@5':>8}{'R@10':>8}{'Sect@1':>9}{'ms/query':>10}{'p95 ms':>9}",
    ]
    for mode in (m for m in MODE_ORDER if m in scores):
        s = scores[mode].summary()
        sect = f"{s['section@1']:.3f}" if s["section@1"] is not None else "-"
        lines.append(
            f"{mode:<10}{s['ndcg@10']:>9.3f}{s['mrr@10']:>9.3f}{s['recall@5']:>8.3f}{s['recall@10']:>8.3f}{sect:>9}{s['latency_ms']:>10.1f}{s['p95_ms']:>9.1f}"
        )
    return "\n".join(lines)


def format_answers(answers: dict[str, dict]) -> str:
    """The per-half table of answer cards and coverage verdicts (hybrid)."""
    rows = [
        ("answerable queries", "answerable", "{:d}"),
        ("  with an answer phrase", "with_phrase", "{:d}"),
        ("unanswerable queries", "unanswerable", "{:d}"),
        ("card shown (answerable)", "card_shown", "{:.3f}"),
        ("card contains the phrase", "card_correct", "{:.3f}"),
        ("answerable flagged not_covered", "answerable_not_covered", "{:.3f}"),
        ("unanswerable flagged", "unanswerable_flagged", "{:.3f}"),
        ("  of which not_covered", "unanswerable_not_covered", "{:.3f}"),
        ("section@1", "section@1", "{:.3f}"),
        ("nDCG@10", "ndcg@10", "{:.3f}"),
    ]
    lines = [f"{'answers and coverage (hybrid)':<34}{'tune':>8}{'test':>8}"]
    for label, key, fmt in rows:
        cells = [fmt.format(answers[h][key]) if answers[h][key] is not None else "-" for h in ("tune", "test")]
        lines.append(f"{label:<34}{cells[0]:>8}{cells[1]:>8}")
    return "\n".join(lines)


def by_kind(judged: Sequence[Judged], scores: ModeScores) -> dict[str, dict[str, float]]:
    """MRR@10 and nDCG@10 per query kind (typo, acronym, ...)."""
    kinds: dict[str, list[QueryResult]] = {}
    kind_of = {j.qid: j.kinds for j in judged}
    for r in scores.results:
        for kind in kind_of.get(r.qid, ()) or ("-",):
            kinds.setdefault(kind, []).append(r)
    return {
        kind: {
            "queries": len(rs),
            "mrr@10": round(statistics.fmean(r.rr for r in rs), 3),
            "ndcg@10": round(statistics.fmean(r.ndcg for r in rs), 3),
        }
        for kind, rs in sorted(kinds.items())
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eval_search.py",
        description="Measure search relevance (nDCG@10, MRR@10, Recall@5/10, latency) "
        "for keyword, semantic and hybrid modes.",
    )
    parser.add_argument(
        "--beir",
        metavar="DIR",
        help="evaluate on a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) instead of the labelled guides",
    )
    parser.add_argument("--split", default="test", help="BEIR qrels split (default: test)")
    parser.add_argument(
        "--queries", default=str(DEFAULT_QUERIES), help="labelled query file for the guides (default: %(default)s)"
    )
    parser.add_argument(
        "--unanswerable",
        default=str(DEFAULT_UNANSWERABLE),
        help="questions no guide answers, for the coverage verdict (default: %(default)s)",
    )
    parser.add_argument("--content", help="guides folder (default: KB_CONTENT_DIR)")
    parser.add_argument("--index", help="use this built index of the guides instead of the live one or a fresh build")
    parser.add_argument(
        "--work-dir",
        help="keep the BEIR guides and index here to reuse them next time (default: a temporary folder, deleted)",
    )
    parser.add_argument("--modes", default=",".join(MODE_ORDER), help="comma-separated modes (default: %(default)s)")
    parser.add_argument("--max-queries", type=int, default=0, help="evaluate only the first N queries (quick checks)")
    parser.add_argument("--by-kind", action="store_true", help="also print hybrid MRR@10 per query kind")
    parser.add_argument(
        "--misses", action="store_true", help="also list queries whose first hybrid result is not relevant"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class _Outcome:
    """One evaluation run, ready to print."""

    dataset: str
    judged: list[Judged]
    scores: dict[str, ModeScores]
    answers: dict[str, dict] | None
    guides: int
    chunks: int
    model: str


def _beir_index(args: argparse.Namespace, embedder, tmp: Path) -> tuple[list[Judged], Path, str]:
    """Write the BEIR corpus as guides and index it with the site's build code."""
    from kb.index.build import build_index

    beir = load_beir(args.beir, args.split)
    work = Path(args.work_dir) if args.work_dir else tmp
    content_dir, index_dir = work / "content", work / "index"
    _say(f"Writing {beir.doc_count:,} documents of {beir.name} as guides in {content_dir} ...")
    beir_to_content(beir.corpus_path, content_dir)
    _say("Building the index with the site's build code (this embeds every chunk; minutes on 2 cores) ...")
    report = build_index(content_dir, index_dir, embedder, progress=sys.stderr.isatty() and not args.json)
    _say(report.summary())
    return beir.judged, index_dir, f"{beir.name} (BEIR, {args.split} split)"


def _guides_index(args: argparse.Namespace, settings: dict, embedder, tmp: Path) -> tuple[list[Judged], Path, str]:
    """The labelled queries and an index of the guides: --index, else the live one if current, else a fresh build."""
    from kb.index.build import build_index
    from kb.index.generation import index_status

    content_dir = Path(args.content or settings["KB_CONTENT_DIR"])
    judged = load_judgements(args.queries)
    if args.index:
        index_dir = Path(args.index)
        _say(f"Using the index at {index_dir}")
    else:
        live = Path(settings["KB_INDEX_DIR"])
        status = index_status(content_dir, live, embedder.name)
        if status.built and not status.stale:
            index_dir = live
            _say(f"Using the live index {status.generation} (up to date with {content_dir})")
        else:
            index_dir = tmp / "index"
            _say(f"The live index is not usable ({status.reason}); building a temporary one from {content_dir} ...")
            _say(build_index(content_dir, index_dir, embedder).summary())
    return judged, index_dir, f"own labelled set ({Path(args.queries).name})"


def _run(args: argparse.Namespace, modes: list[str], settings: dict, embedder, tmp: Path) -> _Outcome | int:
    """Index, check the labels, search every query in every mode; an int is an exit code (labels name nothing)."""
    from kb.search.pipeline import Searcher

    if args.beir:
        judged, index_dir, dataset = _beir_index(args, embedder, tmp)
    else:
        judged, index_dir, dataset = _guides_index(args, settings, embedder, tmp)
    if args.max_queries:
        judged = judged[: args.max_queries]
    searcher = Searcher(index_dir, embedder, max_query_length=5000, max_limit=200)
    gen = searcher.generation()
    if not args.beir:
        problems = check_judgements(judged, gen.chunks)
        if problems:
            _say("The labelled queries name guides or sections that do not exist:\n  " + "\n  ".join(problems))
            return 2
    searcher.search(SearchRequest("warm up", limit=K, mode="hybrid"))
    _say(f"Evaluating {len(judged)} queries in {', '.join(modes)} mode ...")
    scores = evaluate(searcher, judged, modes)
    answers = None
    if not args.beir and "hybrid" in scores:
        unanswerable = load_unanswerable(args.unanswerable)
        given = verdicts(searcher, unanswerable)
        answers = {
            half: answer_summary(judged, scores["hybrid"], unanswerable, given, half) for half in ("tune", "test")
        }
    guides = len({c.slug for c in gen.chunks})
    return _Outcome(dataset, judged, scores, answers, guides, len(gen.chunks), embedder.name)


def _print_json(out: _Outcome, args: argparse.Namespace, command: str) -> None:
    payload = {
        "dataset": out.dataset,
        "queries": len(out.judged),
        "guides": out.guides,
        "chunks": out.chunks,
        "model": out.model,
        "command": command.strip(),
        "modes": {m: out.scores[m].summary() for m in MODE_ORDER if m in out.scores},
    }
    if args.by_kind and "hybrid" in out.scores and not args.beir:
        payload["hybrid_by_kind"] = by_kind(out.judged, out.scores["hybrid"])
    if out.answers:
        payload["answers"] = out.answers
    print(json.dumps(payload, indent=2))


def _print_text(out: _Outcome, args: argparse.Namespace) -> None:
    title = (
        f"{out.dataset}: {len(out.judged)} queries over {out.guides:,} guides ({out.chunks:,} sections); "
        f"model {out.model}"
    )
    print(format_table(title, out.scores))
    if out.answers:
        print("\n" + format_answers(out.answers))
    if args.by_kind and "hybrid" in out.scores and not args.beir:
        print("\nhybrid by query kind:")
        for kind, s in by_kind(out.judged, out.scores["hybrid"]).items():
            print(f"  {kind:<11} {s['queries']:>4} queries  MRR@10 {s['mrr@10']:.3f}  nDCG@10 {s['ndcg@10']:.3f}")
    if args.misses and "hybrid" in out.scores:
        _print_misses(out.judged, out.scores["hybrid"])


def _print_misses(judged: Sequence[Judged], hybrid: ModeScores) -> None:
    print("\nhybrid: first result not relevant:")
    wanted = {j.qid: j for j in judged}
    for r in hybrid.results:
        if r.rr < 1.0:
            got = ", ".join(f"{s}#{a}" if a else s for s, a in r.ranked[:3])
            print(f"  [{r.rr:.2f}] {r.query!r}\n      wanted {sorted(wanted[r.qid].grades)}\n      got    {got}")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the evaluation, print the table (or JSON); returns the exit code."""
    from kb import config
    from kb.engines.embedding import make_encoder
    from kb.errors import KBError

    parser = _parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODE_ORDER]
    if bad or not modes:
        parser.error(f"--modes must be a comma-separated subset of {','.join(MODE_ORDER)}; got '{args.modes}'")
    settings = config.validate({k: v for k, v in os.environ.items() if k in config.BY_NAME})
    # No query cache: every mode pays for its own query encoding, so latencies compare fairly.
    embedder = make_encoder(settings["KB_MODEL"], threads=settings["KB_TORCH_THREADS"], cache_size=0)
    tmp = tempfile.TemporaryDirectory(prefix="kb-eval-")
    try:
        out = _run(args, modes, settings, embedder, Path(tmp.name))
        if isinstance(out, int):
            return out
        if args.json:
            _print_json(
                out, args, "python scripts/eval_search.py " + " ".join(argv if argv is not None else sys.argv[1:])
            )
        else:
            _print_text(out, args)
        return 0
    except ContentError as exc:
        for p in exc.problems:
            _say(p.format())
        return 1
    except KBError as exc:
        _say(f"eval_search: {exc.message}")
        return 1
    finally:
        tmp.cleanup()
