#!/usr/bin/env python3
"""Performance benchmark: query latency, HTTP latency under gunicorn, build cost, memory, cold start.

    python benchmarks/bench.py            # the full run (about 10-15 minutes on 2 cores); writes docs/BENCHMARKS.md
    python benchmarks/bench.py --quick    # a small smoke run (about 2 minutes); prints only

Every figure goes through the project's own code paths: `kb.index.build.build_index` and
`kb.index.build.build_from_chunks` make the index generations, `kb.search.pipeline.Searcher` answers the
in-process queries, and the HTTP figures come from the production server configuration
(`gunicorn -c gunicorn.conf.py 'app:create_app()'`). How each corpus is made is printed with it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from benchmarks import serving  # noqa: E402
from kb.content.chunking import MAX_CHARS, Chunk, chunk_guide, split_text  # noqa: E402
from kb.content.glossary import Glossary  # noqa: E402
from kb.content.guide import load_guides  # noqa: E402
from kb.content.render import render_markdown  # noqa: E402
from kb.index.build import build_from_chunks, build_index  # noqa: E402
from kb.index.generation import current_path, read_chunks, read_vectors  # noqa: E402
from kb.search.pipeline import Searcher  # noqa: E402
from kb.search.request import SearchRequest  # noqa: E402

DOC = ROOT / "docs" / "BENCHMARKS.md"
SECTION = "## Performance"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
COMMAND = "python benchmarks/bench.py"

# Plain-English, abbreviated and misspelt questions of the kind students type; the guides' own
# question headings are added to these at run time.
STUDENT_QUERIES = [
    "how long is the psa",
    "can i use the bnf in the psa",
    "psa pass mark",
    "prescribing safety assesment calculation questions",
    "is there a calculator in the prescribing exam",
    "what happens if i fail the psa",
    "psa resit",
    "sjt scoring",
    "is the sjt negatively marked",
    "how is the situational judgement test used now",
    "epm deciles",
    "how do i rank foundation schools",
    "preference informed allocation",
    "linked applications with my partner",
    "pre allocation criteria carer",
    "special foundation programme scotland",
    "oriel registration deadline",
    "uk graduate prioritisation",
    "ukmla akt format",
    "how many questions in the akt",
    "cpsa osce stations",
    "what if i fail finals",
    "mla content map",
    "provisional registration gmc",
    "can an f1 do locums",
    "rota and pay for foundation doctors",
    "banding and hours f1",
    "shadowing week induction",
    "what is an arcp",
    "horus eportfolio",
    "turas portfolio scotland",
    "team assessment of behaviour",
    "supervised learning events cbd mini-cex",
    "first day on placement what to bring",
    "how to present a patient on the ward round",
    "clerking template",
    "confidentiality on placement social media",
    "logbook sign off dops",
    "elective funding and planning",
    "assistantship what do i do",
    "osce revision tips",
    "wellbeing support if im struggling",
    "burnout at medical school",
    "first in family medical student",
    "widening participation support",
    "near peer mentoring",
    "study group question bank",
    "medical society committee",
    "professional behaviour online",
    "fitness to practise concerns",
    "good medical practice domains",
    "how to reason through sjt scenarios",
    "foundation programme key dates",
    "what does ukfpo do",
    "night shifts as an f1",
    "how do i get help with a rota gap",
    "raising concerns about patient safety",
    "what counts as a dops",
    "when do i get my allocation",
    "psa bnfc children doses",
]


# ---- machine -----------------------------------------------------------------------------------
def machine() -> dict:
    """What this ran on: processor, cores, memory, versions, load."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    torch = sys.modules.get("torch")
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "memory_gib": round(mem_gib, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": version("torch"),
        "torch_threads": torch.get_num_threads() if torch is not None else 0,
        "onnxruntime": version("onnxruntime"),
        "faiss": version("faiss-cpu"),
        "whoosh": version("Whoosh-Reloaded"),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else (0, 0, 0),
    }


# ---- corpora -----------------------------------------------------------------------------------
def real_chunks(content_dir: Path) -> tuple[list[Chunk], Glossary]:
    """The guides chunked exactly as a build chunks them."""
    guides, _ = load_guides(content_dir)
    chunks: list[Chunk] = []
    for g in guides:
        chunks.extend(chunk_guide(g, render_markdown(g.body)))
    return chunks, Glossary.load(content_dir)


def find_scifact(explicit: str | None = None) -> Path | None:
    """The SciFact corpus in BEIR layout: --scifact, $KB_BENCH_SCIFACT, or shared/eval/beir/scifact beside the
    checkout."""
    candidates = [explicit, os.environ.get("KB_BENCH_SCIFACT")]
    candidates += [str(base / "shared" / "eval" / "beir" / "scifact") for base in (ROOT.parent, ROOT.parent.parent)]
    for c in candidates:
        if c and (Path(c) / "corpus.jsonl").is_file():
            return Path(c)
    return None


def scifact_passages(scifact: Path, limit: int | None = None) -> list[Chunk]:
    """SciFact abstracts split into passages with the chunker's own paragraph/sentence splitter, in file order."""
    out: list[Chunk] = []
    with open(scifact / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            slug = f"scifact-{doc['_id']}"
            for i, part in enumerate(split_text(doc["text"].strip(), MAX_CHARS)):
                cid = f"{slug}#" if i == 0 else f"{slug}#~{i + 1}"
                out.append(Chunk(cid, slug, doc["title"].strip() or slug, "scifact", ("scifact",), "", "", (), part, i))
            if limit and len(out) >= limit:
                return out[:limit]
    return out


def scifact_claims(scifact: Path | None) -> list[str]:
    if scifact is None or not (scifact / "queries.jsonl").is_file():
        return []
    with open(scifact / "queries.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["text"].strip() for line in fh if line.strip()]


SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")


def rotate_sentences(text: str, by: int) -> str:
    """The same sentences in another order: a deterministic variant of a real passage."""
    parts = [p for p in SENTENCE_RE.split(text) if p]
    if len(parts) < 2:
        return text
    k = by % len(parts)
    return " ".join(parts[k:] + parts[:k])


def variant(chunk: Chunk, v: int) -> Chunk:
    slug = f"{chunk.slug}-v{v}"
    return Chunk(
        chunk.id.replace(chunk.slug, slug, 1),
        slug,
        chunk.title,
        chunk.category,
        chunk.tags,
        chunk.anchor,
        chunk.heading,
        chunk.heading_path,
        rotate_sentences(chunk.text, v),
        chunk.position,
    )


def encode_cached(
    embedder, texts: list[str], cache_dir: Path | None, progress: bool = False
) -> tuple[np.ndarray, bool]:
    """Encode passages with the real model, reusing an earlier run's vectors for the very same texts and model."""
    key = hashlib.sha256((embedder.name + "\n" + "\n\x1e".join(texts)).encode()).hexdigest()[:24]
    path = cache_dir / f"vectors-{key}.npy" if cache_dir else None
    if path is not None and path.is_file():
        return np.load(path), True
    vectors = embedder.encode(texts, progress=progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors, False


@dataclass
class Corpus:
    size: int
    chunks: list[Chunk]
    vectors: np.ndarray
    recipe: str
    real_vectors: int


def make_corpus(
    size: int,
    guide_chunks: list[Chunk],
    guide_vectors: np.ndarray,
    sci: list[Chunk],
    sci_vectors: np.ndarray,
    seed: int = 7,
) -> Corpus:
    """A corpus of `size` chunks of real text, built deterministically.

    Rows: every guide chunk, then SciFact passages in file order, then sentence-rotated variants of
    the SciFact passages (variant 1 of every passage, then variant 2, ...). Vectors: the real
    encoding of each guide chunk and of the first len(sci_vectors) SciFact passages; every other row
    reuses the real vector of an encoded passage (the passage's own source for a variant) plus a small
    fixed-seed perturbation, renormalised, so no two rows tie exactly.
    """
    base = guide_chunks + sci
    if not base:
        raise ValueError("no passages to build a corpus from")
    pool_for_variants = sci or guide_chunks
    chunks = list(base[:size])
    sources = list(range(min(size, len(base))))
    v = 1
    while len(chunks) < size:
        for i, c in enumerate(pool_for_variants):
            if len(chunks) >= size:
                break
            chunks.append(variant(c, v))
            sources.append((len(guide_chunks) if sci else 0) + i)
        v += 1
    g, e = len(guide_chunks), len(sci_vectors)
    real = np.vstack([guide_vectors, sci_vectors]) if e else np.asarray(guide_vectors)
    dim = real.shape[1]

    def borrowed(src: int) -> int:
        """The encoded row whose vector a row with source passage `src` reuses."""
        if src < g + e:
            return src
        return g + (src - g) % e if e else src % g

    own = np.array([row == src and src < g + e for row, src in enumerate(sources)], dtype=bool)
    vectors = real[[borrowed(src) for src in sources]].astype(np.float32)
    derived = int((~own).sum())
    if derived:
        rng = np.random.default_rng(seed)
        noisy = vectors[~own] + rng.standard_normal((derived, dim)).astype(np.float32) * 0.01
        vectors[~own] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    n_guides = min(size, len(guide_chunks))
    n_sci = min(max(size - n_guides, 0), len(sci))
    n_var = size - n_guides - n_sci
    recipe = f"{n_guides} guide chunks + {n_sci} SciFact passages" + (
        f" + {n_var} sentence-rotated variants of SciFact passages" if n_var else ""
    )
    recipe += (
        f"; {size - derived} rows carry their own real encoding, "
        f"{derived} borrow an encoded passage's vector (+ fixed-seed noise, sigma 0.01)"
    )
    return Corpus(size, chunks, vectors, recipe, size - derived)


# ---- query pools -------------------------------------------------------------------------------
def guide_queries(chunks: Sequence[Chunk]) -> list[str]:
    """Students' own phrasings, then the guides' question headings, without duplicates."""
    headings = [c.heading for c in chunks if c.heading.endswith("?") and "still current" not in c.heading]
    return list(dict.fromkeys(q.strip() for q in [*STUDENT_QUERIES, *headings] if q.strip()))


def interleave(*lists: Sequence[str]) -> list[str]:
    out: list[str] = []
    for i in range(max((len(x) for x in lists), default=0)):
        out.extend(x[i] for x in lists if i < len(x))
    return list(dict.fromkeys(out))


def typing_prefixes(query: str) -> list[str]:
    """What search-as-you-type sends while a query is typed: each prefix of two or more whole words."""
    words = query.split()
    return [" ".join(words[:k]) for k in range(2, len(words))]


def http_queries(gq: Sequence[str]) -> list[str]:
    """On-topic queries for the real guides: full questions, their typing prefixes, and common additions."""
    prefixes = [p for q in gq for p in typing_prefixes(q)]
    additions = [f"{q} {w}" for w in ("uk", "help", "tips", "explained", "for f1", "2026") for q in STUDENT_QUERIES]
    return interleave(list(gq), prefixes, additions)


def long_queries(pool: Sequence[str], n: int, length: int = 300) -> list[str]:
    """Queries at the length limit: consecutive pool entries joined and cut at a word boundary."""
    out, i = [], 0
    while len(out) < n and pool:
        parts: list[str] = []
        while len(" ".join(parts)) < length:
            parts.append(pool[i % len(pool)].rstrip("?."))
            i += 1
        text = " ".join(parts)[:length]
        out.append(text[: text.rfind(" ")] if " " in text else text)
    return out


# ---- timing helpers ----------------------------------------------------------------------------
def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def summary_ms(per_query_seconds: Sequence[float]) -> dict:
    return {
        "p50": pct(per_query_seconds, 50) * 1000,
        "p95": pct(per_query_seconds, 95) * 1000,
        "n": len(per_query_seconds),
    }


def time_queries(
    searcher: Searcher,
    queries: Sequence[str],
    mode: str,
    passes: int,
    cold: bool,
    clear_cache: Callable[[], None] | None,
) -> dict:
    """Per-query latency of Searcher.search, the median of `passes` runs of each query.

    cold=True empties the query-embedding cache before each pass, so every query is encoded;
    cold=False runs a priming pass first, so every timed query finds its vector in the cache.
    """
    runs: list[list[float]] = [[] for _ in queries]
    cpu: list[list[float]] = [[] for _ in queries]
    if not cold:
        for q in queries:
            searcher.search(SearchRequest(q, limit=10, mode=mode))
    for _ in range(passes):
        if cold and clear_cache:
            clear_cache()
        for i, q in enumerate(queries):
            t, c = time.perf_counter(), time.thread_time()
            searcher.search(SearchRequest(q, limit=10, mode=mode))
            runs[i].append(time.perf_counter() - t)
            cpu[i].append(time.thread_time() - c)
    out = summary_ms([statistics.median(r) for r in runs])
    # CPU time of this thread: what the query costs, whatever else the machine is doing
    # (every stage runs on the calling thread: ONNX and FAISS are set to one thread)
    out["cpu"] = summary_ms([statistics.median(r) for r in cpu])
    return out


def time_encoding(embedder, queries: Sequence[str]) -> dict:
    """One query at a time: through the query path (the ONNX export when prepared) and through sentence-transformers."""
    out = {}
    clear = getattr(embedder, "clear_cache", None)
    if hasattr(embedder, "encode_query"):
        if clear:
            clear()
        per = []
        for q in queries:
            t = time.perf_counter()
            embedder.encode_query(q)
            per.append(time.perf_counter() - t)
        out["query_path"] = summary_ms(per)
        out["backend"] = getattr(embedder, "query_backend", "encode")
    per = []
    for q in queries:
        t = time.perf_counter()
        embedder.encode([q])
        per.append(time.perf_counter() - t)
    out["sentence_transformers"] = summary_ms(per)
    if clear:
        clear()
    return out


# ---- in-process query latency ------------------------------------------------------------------
def bench_queries(
    embedder,
    corpus: Corpus,
    work: Path,
    queries: Sequence[str],
    long_pool: Sequence[str],
    passes: int,
    glossary: Glossary,
    log=print,
) -> dict:
    """Build a generation of `corpus` through build_from_chunks and time Searcher.search on it."""
    index = work / f"corpus-{corpus.size}"
    t = time.perf_counter()
    report = build_from_chunks(index, corpus.chunks, corpus.vectors, embedder.name, glossary=glossary)
    build_s = time.perf_counter() - t
    searcher = Searcher(index, embedder, reload_interval=3600)
    t = time.perf_counter()
    searcher.search(SearchRequest("warm up", mode="hybrid"))
    load_s = time.perf_counter() - t
    clear = getattr(embedder, "clear_cache", None)
    out: dict = {
        "size": corpus.size,
        "recipe": corpus.recipe,
        "index_build_s": build_s,
        "first_query_s": load_s,
        "generation": report.generation,
        "modes": {},
    }
    for mode in ("keyword", "semantic", "hybrid"):
        cold = time_queries(searcher, queries, mode, passes, True, clear)
        cached = cold if mode == "keyword" else time_queries(searcher, queries, mode, passes, False, clear)
        out["modes"][mode] = {"cold": cold, "cached": cached}
        log(
            f"  {corpus.size:>7} chunks  {mode:<8} p50 {cold['p50']:7.1f} ms  p95 {cold['p95']:7.1f} ms  CPU p50 "
            f"{cold['cpu']['p50']:5.1f} ms  "
            f"(cached p50 {cached['p50']:6.1f}, p95 {cached['p95']:6.1f})"
        )
    if long_pool:
        out["long_hybrid"] = time_queries(searcher, long_pool, "hybrid", passes, True, clear)
        log(
            f"  {corpus.size:>7} chunks  hybrid, 300-character queries: p50 {out['long_hybrid']['p50']:.1f} ms  "
            f"p95 {out['long_hybrid']['p95']:.1f} ms"
        )
    searcher.generation().close()
    shutil.rmtree(index, ignore_errors=True)
    return out


# ---- build cost --------------------------------------------------------------------------------
def bench_build(embedder, content_dir: Path, work: Path, repeats: int, log=print) -> dict:
    """Full build_index of the real guides vs encoding the very same passages with the model alone.

    Raw encoding and full builds alternate (raw, build, raw, build, ...) with the model already
    loaded. Two views of the overhead: pairwise, each build's wall time against the raw run just
    before it; and within the build, the time the build spends on everything but its own encoding
    call (the same call on the same passages) against that call. On a shared machine the speed of
    encoding drifts by tens of percent between runs a minute apart, which the pairwise view absorbs
    and the within-build view does not see: the latter is quoted against the target.
    """
    chunks, _ = real_chunks(content_dir)
    texts = [c.embed_text for c in chunks]
    embedder.encode(texts[:16])  # load and warm the model: both sides start warm
    pairs = []
    for r in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        embedder.encode(texts)
        raw, raw_cpu = time.perf_counter() - t, time.process_time() - c
        index = work / f"build-{r}"
        t, c = time.perf_counter(), time.process_time()
        report = build_index(content_dir, index, embedder, full=True)
        total, total_cpu = time.perf_counter() - t, time.process_time() - c
        rest = total - report.embed_seconds
        pairs.append(
            {
                "raw_s": raw,
                "raw_cpu_s": raw_cpu,
                "build_s": total,
                "build_cpu_s": total_cpu,
                "build_embed_s": report.embed_seconds,
                "ratio": total / raw,
                "within": rest / report.embed_seconds,
            }
        )
        log(
            f"  pair {r + 1}: raw encoding {raw:.2f} s, full build {total:.2f} s (its encoding "
            f"{report.embed_seconds:.2f} s, the rest {rest:.2f} s); "
            f"pairwise {100 * (total / raw - 1):+.1f} %, within the build "
            f"{100 * rest / report.embed_seconds:+.1f} %, CPU time {100 * (total_cpu / raw_cpu - 1):+.1f} %"
        )
        if r < repeats - 1:
            shutil.rmtree(index, ignore_errors=True)
    return {
        "chunks": len(chunks),
        "pairs": pairs,
        "raw_s": statistics.median(p["raw_s"] for p in pairs),
        "build_s": statistics.median(p["build_s"] for p in pairs),
        "non_encoding_s": statistics.median(p["build_s"] - p["build_embed_s"] for p in pairs),
        "overhead_pct": 100 * statistics.median(p["within"] for p in pairs),
        "pairwise_pct": 100 * (statistics.median(p["ratio"] for p in pairs) - 1),
        "cpu_pct": 100 * (statistics.median(p["build_cpu_s"] / p["raw_cpu_s"] for p in pairs) - 1),
        "index": str(work / f"build-{repeats - 1}"),
    }


def edit_guide(path: Path, n: int) -> None:
    """A maintainer's small edit: one more sentence at the end of the guide's last section."""
    text = path.read_text(encoding="utf-8").rstrip("\n")
    path.write_text(
        text + f"\n\nThis section was revised (edit {n}) to check that rebuilding after one change stays quick.\n",
        encoding="utf-8",
    )


def bench_incremental(
    embedder, content_dir: Path, work: Path, repeats: int, command: bool = True, encoder: str | None = None, log=print
) -> dict:
    """Rebuild after one guide changes: in-process (model loaded) and as the maintainer's command.

    `encoder` is the query encoder's ONNX export, put where the command finds it, as the first
    build command of a checkout leaves it.
    """
    content = work / "incremental-content"
    index = work / "incremental-index"
    shutil.rmtree(content, ignore_errors=True)
    shutil.copytree(content_dir, content)
    build_index(content, index, embedder, full=True)
    paths = sorted(p for p in content.glob("*/*.md"))
    runs = []
    for r in range(repeats):
        path = paths[(r * 7) % len(paths)]
        edit_guide(path, r)
        t, c = time.perf_counter(), time.process_time()
        report = build_index(content, index, embedder)
        runs.append(
            {
                "guide": path.stem,
                "seconds": time.perf_counter() - t,
                "cpu_seconds": time.process_time() - c,
                "embedded": report.embedded,
                "reused": report.reused,
                "keyword": report.keyword_mode,
            }
        )
        log(
            f"  edit {r + 1} ({path.stem}): {runs[-1]['seconds']:.2f} s (CPU {runs[-1]['cpu_seconds']:.2f} s), "
            f"{report.embedded} chunk(s) re-embedded, "
            f"{report.reused} reused, keyword index {report.keyword_mode}"
        )
    out: dict = {
        "runs": runs,
        "seconds": statistics.median(x["seconds"] for x in runs),
        "cpu_seconds": statistics.median(x["cpu_seconds"] for x in runs),
    }
    if command:
        if encoder:
            from kb.engines.embedding import ENCODERS_DIR

            shutil.copytree(encoder, index / ENCODERS_DIR / Path(encoder).name, dirs_exist_ok=True)
        cmd_runs: list[float] = []
        cmd_cpu: list[float] = []
        for r in range(max(1, repeats)):
            path = paths[(r * 7 + 3) % len(paths)]
            edit_guide(path, 100 + r)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            proc = serving.run_build(content, index)
            cmd_runs.append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cmd_cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            if proc.returncode != 0:
                raise RuntimeError(f"build command failed: {proc.stderr[-2000:]}")
            log(
                f"  command after editing {path.stem}: {cmd_runs[-1]:.2f} s, CPU {cmd_cpu[-1]:.2f} s "
                f"({proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ''})"
            )
        out["command_runs"] = cmd_runs
        out["command_seconds"] = statistics.median(cmd_runs)
        out["command_cpu_seconds"] = statistics.median(cmd_cpu)
        out["command"] = "python scripts/build_index.py --content DIR --index DIR --quiet"
    return out


# ---- HTTP --------------------------------------------------------------------------------------
LIVE_SEARCH = {"Accept": "application/json", "X-Requested-With": "live-search"}


def http_get(host: str, port: int, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
    # as the site's search-as-you-type sends them: keystroke searches are not recorded in analytics
    return serving.http_get(host, port, path, headers=LIVE_SEARCH, timeout=timeout)


def search_path(q: str) -> str:
    return "/api/search?" + urllib.parse.urlencode({"q": q, "limit": 8})


def load_test(
    host: str, port: int, queries: Sequence[str], clients: int, requests_per_client: int, pause: float = 0.0
) -> dict:
    """`clients` threads each send `requests_per_client` searches, waiting `pause` seconds after each answer.

    pause=0 is a saturation run (throughput); a pause like the site's 150 ms typing debounce models
    students typing. Client c sends queries[c], queries[c + clients], ...: no query repeats within a run.
    """
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        mine, errs = [], []
        for i in range(requests_per_client):
            q = queries[(c + i * clients) % len(queries)]
            t = time.perf_counter()
            try:
                status, body = http_get(host, port, search_path(q))
                if status != 200 or json.loads(body).get("ok") is not True:
                    errs.append(f"HTTP {status}")
            except (OSError, ValueError) as exc:
                errs.append(exc.__class__.__name__)
            mine.append(time.perf_counter() - t)
            if pause:
                time.sleep(pause)
        with lock:
            latencies.extend(mine)
            errors.extend(errs)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    out = summary_ms(latencies)
    out.update(
        clients=clients,
        pause_ms=pause * 1000,
        requests=len(latencies),
        errors=len(errors),
        error_kinds=sorted(set(errors)),
        seconds=wall,
        throughput=len(latencies) / wall if wall else 0.0,
    )
    return out


def children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def memory_mib(pid: int) -> dict:
    """Resident (RSS) and proportional (PSS) memory of one process, in MiB."""
    out = {"rss": float("nan"), "pss": float("nan")}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss"] = int(line.split()[1]) / 1024
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["pss"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def measured(master: int, run: Callable[[], dict]) -> dict:
    """Run a load test and add the workers' CPU time per request (server-side cost, whatever the load)."""
    workers = children(master)
    before = sum(cpu_seconds(w) for w in workers)
    out = run()
    after = sum(cpu_seconds(w) for w in workers)
    out["server_cpu_ms"] = (after - before) / max(out["requests"], 1) * 1000
    return out


def server_memory(master: int) -> dict:
    workers = children(master)
    return {"master": memory_mib(master), "workers": [memory_mib(w) for w in workers]}


def wait_until_settled(master: int, workers: int, timeout: float = 60.0) -> None:
    """Wait until every worker exists and its resident memory has stopped growing (warm-up done)."""
    deadline = time.monotonic() + timeout
    last: list[float] = []
    stable = 0
    while time.monotonic() < deadline:
        pids = children(master)
        now = [memory_mib(p)["rss"] for p in pids]
        if (
            len(pids) >= workers
            and last
            and len(now) == len(last)
            and all(abs(a - b) < 1.0 for a, b in zip(now, last, strict=True))
        ):
            stable += 1
            if stable >= 4:
                return
        else:
            stable = 0
        last = now
        time.sleep(0.25)


def bench_http(
    index_dir: Path,
    content_dir: Path,
    queries: Sequence[str],
    work: Path,
    requests_1: int,
    requests_8: int,
    memory_queries: int = 1000,
    log=print,
) -> dict:
    """Start the production server (gunicorn, gunicorn.conf.py) on the built index and measure it."""
    workers = int(os.environ.get("KB_WORKERS", "2"))
    log_path = work / "gunicorn.log"
    out: dict = {"command": "gunicorn -c gunicorn.conf.py 'app:create_app()'", "workers": workers}
    out["query_backend"] = "onnx" if any((index_dir / "encoders").glob("*/model.onnx")) else "sentence-transformers"
    t0 = time.perf_counter()
    with serving.gunicorn(content_dir, index_dir, workers=workers, log=log_path, wait=False) as server:
        port, proc = server.port, server.proc
        first = None
        while time.perf_counter() - t0 < 120:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {proc.returncode}; see {log_path}")
            try:
                status, _ = http_get("127.0.0.1", port, search_path("how long is the psa"), timeout=30)
                if status == 200:
                    first = time.perf_counter() - t0
                    break
            except OSError:
                pass
            time.sleep(0.05)
        if first is None:
            raise RuntimeError(f"gunicorn did not answer within 120 s; see {log_path}")
        out["cold_start_s"] = first
        log(f"  cold start to first answered query: {first:.2f} s")
        wait_until_settled(proc.pid, workers)
        out["memory_start"] = server_memory(proc.pid)
        served = 1
        # every request below carries a query this server has not seen (the slice after the warm-up)
        fresh = [q for q in queries if q != "how long is the psa"]
        one = measured(proc.pid, lambda: load_test("127.0.0.1", port, fresh[:requests_1], 1, requests_1))
        served += one["requests"]
        log(
            f"  1 client : p50 {one['p50']:.1f} ms  p95 {one['p95']:.1f} ms  {one['throughput']:.1f} req/s  "
            f"errors {one['errors']}  worker CPU {one['server_cpu_ms']:.1f} ms/request"
        )
        rest = fresh[requests_1:]
        eight = measured(proc.pid, lambda: load_test("127.0.0.1", port, rest[: 8 * requests_8], 8, requests_8))
        served += eight["requests"]
        if served < memory_queries:
            extra = load_test("127.0.0.1", port, list(reversed(queries)), 2, (memory_queries - served + 1) // 2)
            served += extra["requests"]
        out["memory_after"] = server_memory(proc.pid)
        out["memory_after_queries"] = served
        log(
            f"  8 clients: p50 {eight['p50']:.1f} ms  p95 {eight['p95']:.1f} ms  {eight['throughput']:.1f} req/s  "
            f"errors {eight['errors']}  worker CPU {eight['server_cpu_ms']:.1f} ms/request"
        )
        typing_pool = rest[8 * requests_8 : 16 * requests_8]
        typing = measured(proc.pid, lambda: load_test("127.0.0.1", port, typing_pool, 8, requests_8, pause=0.15))
        served += typing["requests"]
        log(
            f"  8 clients typing (150 ms pause): p50 {typing['p50']:.1f} ms  p95 {typing['p95']:.1f} ms  "
            f"{typing['throughput']:.1f} req/s  errors {typing['errors']}"
        )
        # the same queries again: every one is now in the workers' query-embedding caches
        repeat_pool = rest[: 8 * requests_8]
        eight_cached = measured(proc.pid, lambda: load_test("127.0.0.1", port, repeat_pool, 8, requests_8))
        served += eight_cached["requests"]
        log(
            f"  8 clients, repeated queries: p50 {eight_cached['p50']:.1f} ms  p95 {eight_cached['p95']:.1f} ms  "
            f"{eight_cached['throughput']:.1f} req/s  errors {eight_cached['errors']}"
        )
        out["memory_end"] = server_memory(proc.pid)
        out["memory_end_queries"] = served
        out.update(
            one=one,
            eight=eight,
            typing=typing,
            eight_cached=eight_cached,
            distinct_queries=len(set(fresh[: requests_1 + 16 * requests_8])),
        )
    return out


# ---- report ------------------------------------------------------------------------------------
def fmt(x: float, digits: int = 1) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def targets(results: dict) -> list[tuple[str, str, str, bool]]:
    rows: list[tuple[str, str, str, bool]] = []
    q = {r["size"]: r for r in results.get("queries", [])}

    def near(n: int):
        return q.get(n) or (min(q.values(), key=lambda r: abs(r["size"] - n)) if q else None)

    for n, limit in ((10_000, 20.0), (100_000, 40.0)):
        r = near(n)
        if r and abs(r["size"] - n) <= n // 2:
            v = r["modes"]["hybrid"]["cold"]["p50"]
            rows.append(
                (
                    f"hybrid p50 at {r['size']:,} chunks (every query encoded)",
                    f"<= {limit:.0f} ms",
                    f"{fmt(v)} ms",
                    v <= limit,
                )
            )
    r = near(10_000)
    if r and abs(r["size"] - 10_000) <= 5_000:
        v = r["modes"]["keyword"]["cold"]["p50"]
        rows.append((f"keyword p50 at {r['size']:,} chunks", "<= 10 ms", f"{fmt(v)} ms", v <= 10.0))
    h = results.get("http")
    if h and "eight" in h:
        v = h["eight"]["p95"]
        rows.append(
            (
                "HTTP p95, 8 clients, real content, distinct queries",
                "<= 50 ms, 0 errors",
                f"{fmt(v)} ms, {h['eight']['errors']} errors",
                v <= 50 and h["eight"]["errors"] == 0,
            )
        )
    b = results.get("build")
    if b:
        rows.append(
            (
                "full build overhead over raw encoding (within the build)",
                "<= 15 %",
                f"{fmt(b['overhead_pct'])} %",
                b["overhead_pct"] <= 15,
            )
        )
        rows.append(
            (
                "full build overhead, pairwise wall time (build vs the raw run before it)",
                "<= 15 %",
                f"{fmt(b['pairwise_pct'])} %",
                b["pairwise_pct"] <= 15,
            )
        )
    inc = results.get("incremental")
    if inc:
        rows.append(
            (
                "incremental rebuild, one guide changed (in-process)",
                "<= 3 s",
                f"{fmt(inc['seconds'], 2)} s",
                inc["seconds"] <= 3,
            )
        )
        if "command_seconds" in inc:
            v = inc["command_seconds"]
            rows.append(
                (
                    "incremental rebuild, one guide changed (the command, fresh process)",
                    "<= 3 s",
                    f"{fmt(v, 2)} s",
                    v <= 3,
                )
            )
    if h and "memory_after" in h:
        worst = max((w["rss"] for w in h["memory_after"]["workers"]), default=float("nan"))
        rows.append(
            (
                f"resident memory per worker after {h['memory_after_queries']:,} queries",
                "<= 700 MB",
                f"{fmt(worst, 0)} MiB",
                worst * 1.048576 <= 700,
            )
        )
    if h and "cold_start_s" in h:
        rows.append(
            ("cold start to first answered query", "<= 10 s", f"{fmt(h['cold_start_s'], 2)} s", h["cold_start_s"] <= 10)
        )
    return rows


def _render_header(results: dict) -> list[str]:
    """Where and how the run happened, then the targets table."""
    m = results["machine"]
    lines = [
        f"Run `{results['command']}` on {results['date']} in {results['elapsed_min']:.1f} minutes.",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB RAM, {m['os']}; "
        f"Python {m['python']}, torch {m['torch']} ({m['torch_threads']} threads for batch encoding), "
        f"onnxruntime {m['onnxruntime']}, faiss-cpu {m['faiss']}, Whoosh-Reloaded {m['whoosh']}. "
        f"Load average (1 min) {m['load_average'][0]:.2f} at the start and "
        f"{m.get('load_average_end', m['load_average'])[0]:.2f} at the end.",
        "",
        "### Targets",
        "",
        "| figure | target | measured | |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {verdict(ok)} |" for a, b, c, ok in targets(results)]
    return lines


def _pp(d: dict) -> str:
    return f"{fmt(d['p50'])} / {fmt(d['p95'])} ms"


def _render_query_table(queries: list[dict]) -> list[str]:
    """One row per corpus size and search mode: cold and cached, wall and CPU."""
    lines = [
        "",
        "### Query latency in-process (`Searcher.search`, limit 10, spelling suggestions on)",
        "",
        "Cold: the query-embedding cache is emptied first, so every query is encoded. "
        "Cached: the same queries again, their vectors already in the cache (a repeated query). "
        "Keyword search does not encode, so it has one figure. "
        "Wall: elapsed time, what a student waits. "
        "CPU: the time the query itself spent on a core (every stage runs on the calling thread), "
        "which is what wall time comes down to on an idle machine.",
        "",
        "| chunks | search | cold p50 / p95 (wall) | cold p50 / p95 (CPU) "
        "| cached p50 / p95 (wall) | cached p50 / p95 (CPU) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in queries:
        rows = [
            (mode, r["modes"][mode]["cold"], r["modes"][mode]["cached"]) for mode in ("keyword", "semantic", "hybrid")
        ]
        if "long_hybrid" in r:
            rows.append(("hybrid, 300-character queries", r["long_hybrid"], None))
        for label, cold, cached in rows:
            same = label == "keyword"
            lines.append(
                f"| {r['size']:,} | {label} | {_pp(cold)} | {_pp(cold['cpu']) if 'cpu' in cold else 'n/a'} | "
                f"{'(same)' if same else _pp(cached) if cached else 'n/a'} | "
                f"{'(same)' if same else _pp(cached['cpu']) if cached and 'cpu' in cached else 'n/a'} |"
            )
    return lines


def _render_query_notes(results: dict) -> list[str]:
    """Query encoding on its own, how the queries were timed, and how each corpus was made."""
    enc = results.get("encode_query")
    qinfo = results.get("query_info", {})
    lines = [""]
    if enc:
        qp, st = enc.get("query_path"), enc["sentence_transformers"]
        if qp:
            lines.append(
                f"Encoding one query alone (no search), {qp['n']} queries: "
                f"{enc['backend']} p50 {fmt(qp['p50'])} ms, p95 {fmt(qp['p95'])} ms; "
                f"sentence-transformers (torch) p50 {fmt(st['p50'])} ms, p95 {fmt(st['p95'])} ms."
            )
        else:
            lines.append(
                f"Encoding one query alone (no search): p50 {fmt(st['p50'])} ms, p95 {fmt(st['p95'])} ms "
                f"over {st['n']} queries."
            )
    if qinfo:
        lines.append(
            f"Queries: {qinfo['n']} distinct, {qinfo['recipe']}; each timed {qinfo['passes']} times, "
            "per-query median, then p50/p95 across queries."
        )
    lines += [
        "",
        "How each corpus was made (`kb.index.build.build_from_chunks`, then `kb.search.pipeline.Searcher`):",
        "",
    ]
    for r in results["queries"]:
        lines.append(
            f"- {r['size']:,} chunks: {r['recipe']}. Index written in {r['index_build_s']:.1f} s; "
            f"first query (loading it) {r['first_query_s'] * 1000:.0f} ms."
        )
    return lines


def _render_http(h: dict) -> list[str]:
    """The gunicorn load test: latency and throughput per client mix, then the server's memory."""
    lines = [
        "",
        f"### HTTP `/api/search` (production configuration: `{h['command']}`, {h['workers']} sync workers, "
        "real content)",
        "",
        "| clients | queries | p50 | p95 | throughput | errors | worker CPU per request |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in (
        ("one", "distinct, back to back"),
        ("eight", "distinct, back to back"),
        ("typing", "distinct, 150 ms pause after each answer"),
        ("eight_cached", "repeated (cached), back to back"),
    ):
        d = h[key]
        lines.append(
            f"| {d['clients']} | {label} | {fmt(d['p50'])} ms | {fmt(d['p95'])} ms | "
            f"{fmt(d['throughput'])} req/s | {d['errors']} | {fmt(d.get('server_cpu_ms', float('nan')))} ms |"
        )
    lines += [
        "",
        "Back to back: each client sends its next request as soon as the answer arrives "
        "(a saturation test: 8 clients keep both workers busy, and the load generator runs on the same 2 cores). "
        "With a pause: each client waits 150 ms after each answer, the site's typing debounce. "
        f"Distinct: no query is repeated ({h['distinct_queries']} different queries), "
        "so every request encodes its query. "
        f"Query encoder in the workers: {h.get('query_backend', 'n/a')}.",
        "",
        "| server memory | master | workers |",
        "|---|---:|---:|",
    ]
    for key, label in (
        ("memory_start", "after start (warm)"),
        ("memory_after", f"after {h['memory_after_queries']:,} queries"),
        ("memory_end", f"after {h['memory_end_queries']:,} queries (end of the run)"),
    ):
        mm = h[key]
        ws = ", ".join(f"{w['rss']:.0f} MiB RSS ({w['pss']:.0f} PSS)" for w in mm["workers"])
        lines.append(f"| {label} | {mm['master']['rss']:.0f} MiB RSS | {ws} |")
    lines += ["", f"Cold start (spawn gunicorn to the first answered search): {h['cold_start_s']:.2f} s."]
    return lines


def _render_build(b: dict) -> list[str]:
    """Raw encoding against the full build, pair by pair, then the medians."""
    lines = [
        "",
        f"### Build ({b['chunks']} chunks of the real guides)",
        "",
        "| | raw encoding (model only) | full `build_index` | its encoding | the rest "
        "| overhead within the build | pairwise (wall) | pairwise (CPU time) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, p in enumerate(b["pairs"], 1):
        lines.append(
            f"| pair {i} | {p['raw_s']:.2f} s | {p['build_s']:.2f} s | {p['build_embed_s']:.2f} s | "
            f"{p['build_s'] - p['build_embed_s']:.2f} s | "
            f"{100 * p['within']:+.1f} % | {100 * (p['ratio'] - 1):+.1f} % | "
            f"{100 * (p['build_cpu_s'] / p['raw_cpu_s'] - 1):+.1f} % |"
        )
    lines.append(
        f"| **median** | {b['raw_s']:.2f} s | {b['build_s']:.2f} s | | {b['non_encoding_s']:.2f} s | "
        f"**{b['overhead_pct']:+.1f} %** | {b['pairwise_pct']:+.1f} % | {b['cpu_pct']:+.1f} % |"
    )
    return lines


def _render_incremental(inc: dict) -> list[str]:
    """One line per edited guide, then the same edit as a command in a fresh process."""
    lines = ["", "Incremental rebuild after editing one guide (one sentence added to its last section):", ""]
    for r in inc["runs"]:
        lines.append(
            f"- `{r['guide']}`: {r['seconds']:.2f} s in-process (CPU {r.get('cpu_seconds', float('nan')):.2f} s), "
            f"{r['embedded']} chunk(s) re-embedded, {r['reused']} reused, keyword index {r['keyword']}"
        )
    if "command_seconds" in inc:
        lines.append(
            f"- as the command `{inc['command']}` in a fresh process "
            "(interpreter start, imports and the encoder included): "
            f"median {inc['command_seconds']:.2f} s (CPU {inc.get('command_cpu_seconds', float('nan')):.2f} s) "
            f"over {len(inc.get('command_runs', [])) or 1} edits: "
            + ", ".join(f"{x:.2f} s" for x in inc.get("command_runs", []))
        )
    return lines


def render(results: dict) -> str:
    """The figures as markdown: the same text is printed and written into docs/BENCHMARKS.md."""
    lines = _render_header(results)
    if results.get("queries"):
        lines += _render_query_table(results["queries"])
        lines += _render_query_notes(results)
    h = results.get("http")
    if h and "one" in h:
        lines += _render_http(h)
    if b := results.get("build"):
        lines += _render_build(b)
    if inc := results.get("incremental"):
        lines += _render_incremental(inc)
    return "\n".join(lines) + "\n"


def write_doc(text: str, path: Path = DOC) -> None:
    """Put the figures between the bench markers inside `## Performance`, keeping everything else."""
    block = f"{START}\n{text}{END}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Benchmarks\n\n{SECTION}\n\n{block}\n", encoding="utf-8")
        return
    doc = path.read_text(encoding="utf-8")
    if START in doc and END in doc:
        doc = doc[: doc.index(START)] + block + doc[doc.index(END) + len(END) :]
    elif SECTION in doc:
        at = doc.index(SECTION) + len(SECTION)
        doc = doc[:at] + f"\n\n{block}\n" + doc[at:]
    else:
        doc = doc.rstrip("\n") + f"\n\n{SECTION}\n\n{block}\n"
    path.write_text(doc, encoding="utf-8")


# ---- main --------------------------------------------------------------------------------------
@dataclass
class Plan:
    sizes: list[int] = field(default_factory=lambda: [1_000, 10_000, 100_000])
    queries: int = 150
    long_queries: int = 40
    passes: int = 3
    encode: int = 1_000
    build_repeats: int = 3
    incremental_repeats: int = 3
    http_1: int = 200
    http_8: int = 100
    memory_queries: int = 1000


QUICK = Plan(
    sizes=[300, 1_000],
    queries=40,
    long_queries=10,
    passes=1,
    encode=200,
    build_repeats=1,
    incremental_repeats=1,
    http_1=30,
    http_8=10,
    memory_queries=200,
)


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="small smoke run (sizes 300 and 1,000, few queries); does not write the doc unless --write",
    )
    ap.add_argument("--sizes", help="corpus sizes in chunks, comma-separated (default 1000,10000,100000)")
    ap.add_argument("--queries", type=int, help="distinct queries per latency figure (default 150)")
    ap.add_argument(
        "--passes", type=int, help="timed passes over the queries; the per-query median is kept (default 3)"
    )
    ap.add_argument(
        "--encode", type=int, help="SciFact passages encoded with the real model for the corpora (default 1000)"
    )
    ap.add_argument("--build-repeats", type=int, help="raw-encoding / full-build pairs (default 3)")
    ap.add_argument(
        "--only",
        default="build,incremental,queries,http",
        help="sections to run (default all: build,incremental,queries,http)",
    )
    ap.add_argument("--content", default=str(ROOT / "content"), help="guides folder (default content/)")
    ap.add_argument(
        "--scifact", help="SciFact folder in BEIR layout (default: shared/eval/beir/scifact beside the checkout)"
    )
    ap.add_argument(
        "--cache",
        default=str(ROOT / "index" / ".bench-cache"),
        help="where encoded passage vectors are kept between runs ('' for none)",
    )
    ap.add_argument("--write", action="store_true", help="write docs/BENCHMARKS.md even with --quick")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--json", help="also write every figure as JSON to this file")
    return ap.parse_args(argv)


def run(args: argparse.Namespace, embedder=None, log=print) -> dict:
    plan = Plan() if not args.quick else QUICK
    if args.sizes:
        plan.sizes = [int(x.replace("_", "").replace(",", "")) for x in args.sizes.split(",") if x.strip()]
    for name in ("queries", "passes", "encode", "build_repeats"):
        if getattr(args, name, None):
            setattr(plan, name, getattr(args, name))
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    started = time.perf_counter()
    if embedder is None:
        from kb.engines.embedding import make_encoder

        # as the server and the build command make it: queries through the model's ONNX export
        embedder = make_encoder(index_dir=ROOT / "index")
    content = Path(args.content)
    cache = Path(args.cache) if args.cache else None
    results: dict = {
        "machine": machine(),
        "command": COMMAND + (" --quick" if args.quick else ""),
        "date": dt.date.today().isoformat(),
        "plan": plan.__dict__,
    }
    log(
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores; load average "
        f"{results['machine']['load_average'][0]:.2f}"
    )
    if hasattr(embedder, "prepare_query_encoder"):
        folder, seconds = embedder.prepare_query_encoder()
        results["query_encoder"] = {
            "backend": embedder.query_backend,
            "export_s": seconds,
            "folder": str(folder) if folder else None,
        }
        log(
            f"Query encoder: {embedder.query_backend}"
            + (f" (exported in {seconds:.1f} s, once per model)" if seconds else "")
        )
    work = Path(tempfile.mkdtemp(prefix="kb-bench-"))
    try:
        build_index_dir: Path | None = None
        if "build" in sections:
            log(f"\nBuild: raw encoding vs full build_index, {plan.build_repeats} pair(s)")
            results["build"] = bench_build(embedder, content, work, plan.build_repeats, log=log)
            build_index_dir = Path(results["build"]["index"])
        if "incremental" in sections:
            log("\nIncremental rebuild after one guide changes")
            results["incremental"] = bench_incremental(
                embedder,
                content,
                work,
                plan.incremental_repeats,
                command=not args.quick,
                encoder=results.get("query_encoder", {}).get("folder"),
                log=log,
            )
        guide_chunks, glossary = real_chunks(content)
        if build_index_dir is None and ({"queries", "http"} & sections):
            build_index_dir = work / "real-index"
            build_index(content, build_index_dir, embedder, full=True)
        guide_vectors = None
        if build_index_dir is not None:
            gen = current_path(build_index_dir)
            assert gen is not None
            built = read_chunks(gen)
            guide_vectors = read_vectors(gen, mmap=False)
            assert [c.id for c in built] == [c.id for c in guide_chunks]
        gq = guide_queries(guide_chunks)
        if "queries" in sections:
            scifact = find_scifact(args.scifact)
            claims = scifact_claims(scifact)
            sci: list[Chunk] = scifact_passages(scifact) if scifact else []
            need_sci = max(0, max(plan.sizes) - len(guide_chunks))
            n_encode = min(plan.encode, len(sci), need_sci)
            t = time.perf_counter()
            sci_vectors, hit = (
                encode_cached(embedder, [c.embed_text for c in sci[:n_encode]], cache)
                if n_encode
                else (np.zeros((0, guide_vectors.shape[1]), np.float32), False)
            )
            log(
                f"\nSciFact: {len(sci)} passages from {scifact}; encoded {n_encode} with the real model in "
                f"{time.perf_counter() - t:.1f} s{' (from the cache of an earlier run)' if hit else ''}"
            )
            pool = interleave(gq, claims)[: plan.queries]
            results["query_info"] = {
                "n": len(pool),
                "passes": plan.passes,
                "recipe": "students' phrasings and the guides' question headings alternating with SciFact claims"
                if claims
                else "students' phrasings and the guides' question headings",
            }
            results["encode_query"] = time_encoding(embedder, pool)
            enc = results["encode_query"]
            log(
                f"Encoding one query alone: {enc.get('backend', '')} p50 "
                f"{enc.get('query_path', enc['sentence_transformers'])['p50']:.1f} ms; "
                f"sentence-transformers p50 {enc['sentence_transformers']['p50']:.1f} ms"
            )
            longs = long_queries(interleave(claims, gq) or gq, plan.long_queries)
            results["queries"] = []
            for size in plan.sizes:
                corpus = make_corpus(size, guide_chunks, guide_vectors, sci, sci_vectors)
                log(f"\nCorpus of {size:,} chunks: {corpus.recipe}")
                results["queries"].append(
                    bench_queries(embedder, corpus, work, pool, longs, plan.passes, glossary, log=log)
                )
        if "http" in sections:
            log("\nHTTP: gunicorn -c gunicorn.conf.py on the real guides' index")
            http_pool = http_queries(gq)
            encoder = results.get("query_encoder", {}).get("folder")
            if encoder:
                from kb.engines.embedding import ENCODERS_DIR

                shutil.copytree(encoder, build_index_dir / ENCODERS_DIR / Path(encoder).name, dirs_exist_ok=True)
            results["http"] = bench_http(
                build_index_dir, content, http_pool, work, plan.http_1, plan.http_8, plan.memory_queries, log=log
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_start = results["machine"]["load_average"]
    results["machine"] = machine()
    results["machine"]["load_average_end"] = results["machine"]["load_average"]
    results["machine"]["load_average"] = load_start
    results["elapsed_min"] = (time.perf_counter() - started) / 60
    return results


def main(argv: Iterable[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    text = render(results)
    print("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    if not args.no_write and (not args.quick or args.write):
        write_doc(text)
        print(f"Wrote the figures into {DOC.relative_to(ROOT)} ({SECTION}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
