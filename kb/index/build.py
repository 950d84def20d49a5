"""The build pipeline: guides -> chunks -> embeddings -> index generation, swapped in atomically.

Layout of the index folder:

    index/current        symlink to the live generation (replaced atomically)
    index/gen-<stamp>/   manifest.json, chunks.jsonl, vectors.faiss, whoosh/, glossary.json,
                         vocabulary.json, short_forms.json
    index/.tmp-<stamp>/  a build in progress; never read by a server
    index/cache/         embedding cache: vectors keyed by (model, chunk text hash)
    index/encoders/      the model's ONNX export for queries (kb.engines.embedding), one folder per model

A build that fails or is killed leaves `current` untouched; the next build removes its debris.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from kb.content.chunking import MAX_CHARS, Chunk, chunk_guide
from kb.content.glossary import Glossary, short_forms
from kb.content.guide import Guide, load_guides
from kb.content.render import RENDER_HINT, render_markdown
from kb.engines import keyword_index, vector_index
from kb.engines.embedding import ENCODERS_DIR, Embedder, export_debris, sha256_file
from kb.engines.embedding_cache import CACHE_DIR, EmbeddingCache, cache_path
from kb.engines.spelling import Vocabulary, section_text
from kb.errors import ContentError, IndexMismatchError, IndexNotBuiltError, KBError, Problem, RenderError

log = logging.getLogger(__name__)

# 2: BM25 idf of Robertson/Sparck Jones in the exported keyword postings (1: whoosh's own idf); vocabulary.json, short_forms.json
FORMAT_VERSION = 2
VOCABULARY_FILE = "vocabulary.json"
SHORT_FORMS_FILE = "short_forms.json"
CHUNKING = {"version": 1, "max_chars": MAX_CHARS, "split": "heading, then paragraph"}
CURRENT = "current"
BUILD_COMMAND = "python scripts/build_index.py"
# Chunks of an unchanged guide are copied from the live generation only if the code that makes
# them is byte-identical; any edit to parsing, rendering or chunking re-chunks every guide.
CHUNKER_FINGERPRINT = hashlib.sha256(
    b"".join(
        (Path(__file__).parents[1] / "content" / name).read_bytes() for name in ("guide.py", "render.py", "chunking.py")
    )
).hexdigest()[:16]
# A retired generation stays on disk this long, for servers finishing requests on it (see _cleanup).
GRACE_SECONDS = 30.0


@dataclass
class BuildReport:
    """What a build did; printed as the summary at the end of a build."""

    generation: str = ""
    guides: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    chunks: int = 0
    embedded: int = 0
    reused: int = 0
    keyword_mode: str = "rewrite"
    seconds: float = 0.0
    embed_seconds: float = 0.0
    skipped: bool = False
    warnings: list[Problem] = field(default_factory=list)
    # slug -> [chunks embedded, chunks in the guide], for guides that had anything embedded
    embedded_by_guide: dict[str, list[int]] = field(default_factory=dict)
    reused_from_cache: int = 0
    encoder: str = ""
    full: bool = False
    debris_removed: int = 0
    generations_removed: list[str] = field(default_factory=list)
    cache_entries: int = 0

    def summary(self) -> str:
        """The first line is the headline; the following lines say what changed and what was reused."""
        if self.skipped:
            return f"Index is up to date ({self.guides} guides, {self.chunks} chunks); nothing to do. Use --full to rebuild anyway."
        lines = [
            f"Built {self.generation}: {self.guides} guides "
            f"({len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed); "
            f"{self.chunks} chunks ({self.embedded} embedded, {self.reused} reused); "
            f"keyword index {self.keyword_mode}; {self.seconds:.2f} s"
        ]
        for label, slugs in (("added", self.added), ("changed", self.changed), ("removed", self.removed)):
            if slugs:
                shown = ", ".join(slugs[:12]) + (f" and {len(slugs) - 12} more" if len(slugs) > 12 else "")
                lines.append(f"  {label}: {shown}")
        if self.embedded:
            if self.full:
                how = "everything (--full)"
            elif len(self.embedded_by_guide) > 8:
                how = f"new or changed sections of {len(self.embedded_by_guide)} guides"
            else:
                how = ", ".join(f"{s} {e} of {t} chunks" for s, (e, t) in sorted(self.embedded_by_guide.items()))
            plural = "s" if self.embedded != 1 else ""
            lines.append(
                f"  embedded {self.embedded} chunk{plural} in {self.embed_seconds:.2f} s with {self.encoder or 'the model'}: {how}"
            )
        else:
            lines.append("  embedded nothing: every chunk's vector came from the cache")
        if self.debris_removed:
            lines.append(f"  removed {self.debris_removed} leftover(s) of an interrupted build")
        if self.generations_removed:
            lines.append(f"  removed old generation(s): {', '.join(self.generations_removed)}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["warnings"] = [p.as_dict() for p in self.warnings]
        return d


def content_hash(guides: list[Guide], glossary: Glossary) -> str:
    h = hashlib.sha256()
    for g in sorted(guides, key=lambda g: g.slug):
        h.update(f"{g.slug}:{g.content_hash}\n".encode())
    h.update(json.dumps([asdict(t) for t in glossary.terms], sort_keys=True).encode())
    return h.hexdigest()


def current_path(index_dir: Path | str) -> Path | None:
    """The live generation folder, or None when there is no usable `current` link (see `current_problem`)."""
    link = Path(index_dir) / CURRENT
    if not link.is_symlink() and not link.is_dir():
        return None
    try:
        target = link.resolve()
    except (OSError, RuntimeError):  # a link to itself, or a loop of links: RuntimeError before Python 3.13
        return None
    return target if target.is_dir() else None


def current_problem(index_dir: Path | str) -> str:
    """Why `current_path` found no live generation, in words that name no server path."""
    link = Path(index_dir) / CURRENT
    if link.is_symlink():
        try:
            link.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
                return "the index link `current` is a symlink loop"
            return "the index link `current` points at a missing folder"
        return "the index link `current` does not point at a generation folder"
    if link.exists():
        return "`current` in the index folder is not a link to a generation"
    return "no index has been built yet"


# What a manifest must hold, and of which type: a manifest of another shape is damage, never a crash.
MANIFEST_FIELDS: dict[str, type] = {
    "format_version": int,
    "model": str,
    "dimension": int,
    "files": dict,
    "counts": dict,
    "guides": dict,
}


def _manifest_shape_problem(manifest: object) -> str | None:
    """What is wrong with the shape of a parsed manifest.json, or None when every field the code reads is sound."""
    if not isinstance(manifest, dict):
        return f"it holds {type(manifest).__name__ if manifest is not None else 'null'}, not an object"
    for key, kind in MANIFEST_FIELDS.items():
        value = manifest.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"'{key}' is missing or not {'a number' if kind is int else 'text' if kind is str else 'an object'}"
    for key in ("generation", "content_hash", "built_at"):
        if key in manifest and not isinstance(manifest[key], str):
            return f"'{key}' is not text"
    if "chunking" in manifest and not isinstance(manifest["chunking"], dict):
        return "'chunking' is not an object"
    for rel, digest in manifest["files"].items():
        if not isinstance(digest, str) or not rel or rel.startswith("/") or ".." in Path(rel).parts:
            return f"the file entry {rel[:60]!r} is not a relative path with a checksum"
    if not all(isinstance(v, str) for v in manifest["guides"].values()):
        return "'guides' does not map slugs to content hashes"
    counts = manifest["counts"]
    if not all(isinstance(counts.get(k), int) and not isinstance(counts.get(k), bool) for k in ("guides", "chunks")):
        return "'counts' lacks whole-number 'guides' and 'chunks'"
    return None


def read_manifest(generation: Path, *, any_format: bool = False) -> dict:
    """The generation's manifest.json, checked for shape; messages name the generation, never a server path.

    Raises:
        IndexNotBuiltError: missing, unreadable or of the wrong shape.
        IndexMismatchError: another format version (unless `any_format`).
    """
    path = generation / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexNotBuiltError(
            f"the index generation {generation.name} has no manifest.json (partial build?); run `{BUILD_COMMAND}`"
        ) from exc
    except (OSError, ValueError) as exc:
        raise IndexNotBuiltError(
            f"the manifest.json of index generation {generation.name} is unreadable or corrupted; run `{BUILD_COMMAND} --full`"
        ) from exc
    problem = _manifest_shape_problem(manifest)
    if problem:
        raise IndexNotBuiltError(
            f"the manifest.json of index generation {generation.name} is damaged ({problem}); run `{BUILD_COMMAND} --full`"
        )
    if manifest.get("format_version") != FORMAT_VERSION and not any_format:
        raise IndexMismatchError(
            f"the index format is {manifest.get('format_version')!r}, this code reads {FORMAT_VERSION}; run `{BUILD_COMMAND}` (it reuses the embeddings)"
        )
    return manifest


def check_files(generation: Path, manifest: dict, *, hashes: bool = True) -> dict[str, tuple[int, int]]:
    """Check that every file the manifest lists is present and, with `hashes`, unaltered.

    Checksums are verified before any file reaches a parser, so a corrupted FAISS or Whoosh file
    is refused with a message instead of being read.

    Returns:
        {relative path: (size, mtime_ns)}, for a cheap stat-only re-check later.

    Raises:
        IndexNotBuiltError: naming the first missing or altered file and the command that fixes it.
    """
    stats: dict[str, tuple[int, int]] = {}
    for rel, digest in (manifest.get("files") or {}).items():
        path = generation / rel
        try:
            st = path.stat()
            altered = hashes and sha256_file(path) != digest
        except OSError as exc:
            raise IndexNotBuiltError(
                f"the index generation {generation.name} is missing {rel}; run `{BUILD_COMMAND} --full` to rebuild it"
            ) from exc
        if altered:
            raise IndexNotBuiltError(
                f"the index file {rel} in {generation.name} is corrupted (checksum mismatch); run `{BUILD_COMMAND} --full` to rebuild it"
            )
        stats[rel] = (st.st_size, st.st_mtime_ns)
    return stats


def read_chunks(generation: Path) -> list[Chunk]:
    with open(generation / "chunks.jsonl", encoding="utf-8") as fh:
        return [Chunk.from_dict(json.loads(line)) for line in fh if line.strip()]


@contextlib.contextmanager
def _build_lock(index_dir: Path):
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".build.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise KBError(f"another build is running on {index_dir}; wait for it to finish") from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _previous(
    index_dir: Path, model: str, full: bool
) -> tuple[Path | None, dict | None, list[Chunk], np.ndarray | None]:
    """The live generation to reuse embeddings from, if it is compatible."""
    gen = current_path(index_dir)
    if gen is None or full:
        return None, None, [], None
    try:
        # an older index format still holds good vectors: reuse them, rewrite everything else
        manifest = read_manifest(gen, any_format=True)
        if manifest.get("model") != model or manifest.get("chunking") != CHUNKING:
            return None, None, [], None
        check_files(gen, manifest)  # a damaged live generation is rebuilt in full, never reused
        chunks = read_chunks(gen)
        vectors = np.load(gen / "vectors.npy", mmap_mode="r")
        if (
            len(vectors) != len(chunks)
            or manifest.get("counts", {}).get("chunks") != len(chunks)
            or manifest.get("dimension") != vectors.shape[1]
        ):
            return None, None, [], None
        return gen, manifest, chunks, vectors
    except (KBError, OSError, ValueError, KeyError) as exc:
        log.warning("previous index unusable for reuse (%s); building everything", exc)
        return None, None, [], None


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def orphan_generations(index_dir: Path | str) -> list[Path]:
    """Generations a build renamed into place but was killed before it moved `current` to them.

    They never served. A generation that was ever live had `current` moved to it after its manifest
    was written, and every later move makes the link newer still; so a generation stamped after the
    live one whose manifest is also newer than the link itself was never live. Needing both keeps a
    hand rollback of `current` (the link is then newer than every manifest) and a plain copy of the
    whole folder (no generation is stamped after the live one) from being taken for a killed build.
    """
    index_dir = Path(index_dir)
    link = index_dir / CURRENT
    live = current_path(index_dir)
    if live is None or not link.is_symlink() or live.parent != index_dir.resolve():
        return []  # no live generation of this folder to compare with
    moved = link.lstat().st_mtime_ns
    orphans = []
    for gen in index_dir.glob("gen-*"):
        if gen.name <= live.name or gen.resolve() == live:
            continue
        try:
            written = (gen / "manifest.json").stat().st_mtime_ns
        except OSError:
            continue  # not a generation a build finished: not ours to judge
        if written > moved:
            orphans.append(gen)
    return sorted(orphans)


def debris(index_dir: Path | str) -> list[Path]:
    """What interrupted builds left behind: temporary generation folders and links, cache files,
    encoder exports (unless an export is running now) and generations that never went live."""
    index_dir = Path(index_dir)
    found = [
        *index_dir.glob(".tmp-*"),
        *(index_dir / CACHE_DIR).glob(".tmp-*"),
        *export_debris(index_dir / ENCODERS_DIR),
    ]
    return sorted([*found, *orphan_generations(index_dir)])


def _remove_debris(index_dir: Path) -> int:
    """Delete leftovers of interrupted builds; only called while holding the build lock."""
    found = debris(index_dir)
    for path in found:
        log.info("removing %s, left by an interrupted build", path.name)
        _remove(path)
    return len(found)


def _cleanup(index_dir: Path, keep: int, grace: float = GRACE_SECONDS) -> list[str]:
    """Remove generations beyond the newest `keep`, once they have been out of service for `grace` s.

    A server notices a new generation within KB_RELOAD_INTERVAL and a request in flight keeps its
    files open, but a worker that picked up the previous generation just before a second quick
    build could still be opening its keyword index: the grace period covers that window.
    """
    live = current_path(index_dir)
    gens = sorted(index_dir.glob("gen-*"), key=lambda p: p.name, reverse=True)
    kept = [g for g in gens if g == live]
    removed = []
    now = time.time()
    for i, gen in enumerate(gens):
        if gen == live:
            continue
        if len(kept) < keep:
            kept.append(gen)
            continue
        successor = gens[i - 1] if i else None
        try:
            retired_at = (successor / "manifest.json").stat().st_mtime if successor else 0.0
        except OSError:
            retired_at = 0.0
        if now - retired_at < grace:
            continue
        shutil.rmtree(gen, ignore_errors=True)
        removed.append(gen.name)
    return removed


def _write_generation(
    index_dir: Path,
    chunks: list[Chunk],
    vectors: np.ndarray,
    glossary: Glossary,
    manifest_fields: dict,
    started: float,
    *,
    keyword_from: tuple[Path, set[str]] | None = None,
    before_swap: Callable[[Path], None] | None = None,
) -> str:
    """Write chunks, vectors and both indexes into a new generation and swap `current` to it.

    Everything is written into `.tmp-<stamp>/`, fsynced, renamed to `gen-<stamp>/`, and only then
    does `current` move, by renaming a new symlink over it: readers see the old generation or the
    new one, never a mixture. Any failure (or Ctrl-C) removes the temporary folder and re-raises.

    `keyword_from` = (previous generation, touched slugs) updates a copy of the previous keyword
    index in place instead of rewriting it. Returns the new generation's name.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    gen_name = f"gen-{stamp}"
    tmp = index_dir / f".tmp-{stamp}"
    link_tmp = index_dir / f".tmp-link-{stamp}"
    try:
        tmp.mkdir(parents=True)
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as fh:
            for c in chunks:
                fh.write(json.dumps(c.as_dict(), ensure_ascii=False) + "\n")
        np.save(tmp / "vectors.npy", vectors)
        vector_index.build(tmp / "vectors.faiss", vectors)
        (tmp / "glossary.json").write_text(
            json.dumps([asdict(t) for t in glossary.terms], ensure_ascii=False), encoding="utf-8"
        )
        # the words spelling suggestions draw on, counted once here rather than by every server process
        texts = [section_text(c.title, c.heading_path, c.text) for c in chunks]
        (tmp / VOCABULARY_FILE).write_text(
            json.dumps(Vocabulary(texts).as_dict(), ensure_ascii=False), encoding="utf-8"
        )
        shorts = [
            {"prefix": list(k), "term": t.term}
            for k, t in short_forms(glossary.terms, texts, lambda w: bool(keyword_index.analyse(w))).items()
        ]
        (tmp / SHORT_FORMS_FILE).write_text(json.dumps(shorts, ensure_ascii=False), encoding="utf-8")
        if keyword_from is not None:
            prev_gen, touched = keyword_from
            shutil.copytree(prev_gen / "whoosh", tmp / "whoosh")
            keyword_index.update(tmp / "whoosh", touched, [c for c in chunks if c.slug in touched])
        else:
            keyword_index.build(tmp / "whoosh", chunks)

        files = {}
        for p in sorted(tmp.rglob("*")):
            if p.is_file() and not p.name.endswith(".lock"):
                with open(p, "rb") as fh:
                    os.fsync(fh.fileno())
                files[str(p.relative_to(tmp))] = sha256_file(p)
        manifest = {
            "format_version": FORMAT_VERSION,
            "generation": gen_name,
            "model": manifest_fields["model"],
            "dimension": int(vectors.shape[1]),
            "chunking": CHUNKING,
            "content_hash": manifest_fields["content_hash"],
            "guides": manifest_fields["guides"],
            "counts": manifest_fields["counts"],
            "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - started, 3),
            "files": files,
        }
        if "chunker" in manifest_fields:
            manifest["chunker"] = manifest_fields["chunker"]
        with open(tmp / "manifest.json", "w", encoding="utf-8") as fh:
            fh.write(json.dumps(manifest, indent=2))
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(tmp)
        if before_swap:
            before_swap(tmp)
        os.rename(tmp, index_dir / gen_name)
        os.symlink(gen_name, link_tmp)
        os.replace(link_tmp, index_dir / CURRENT)
        _fsync_dir(index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        link_tmp.unlink(missing_ok=True)
        raise
    return gen_name


def build_index(
    content_dir: Path | str,
    index_dir: Path | str,
    embedder: Embedder,
    *,
    full: bool = False,
    progress: bool = False,
    keep: int = 2,
    today: dt.date | None = None,
    force: bool = False,
    grace: float = GRACE_SECONDS,
    before_swap: Callable[[Path], None] | None = None,
    after_embed: Callable[[BuildReport], None] | None = None,
) -> BuildReport:
    """Build (incrementally) a new index generation and make it live.

    Every chunk's vector is looked up in the embedding cache (by model and text hash) and in the
    live generation; only the misses are encoded, so the encoder (and its model) is not even
    loaded when nothing changed. `full` ignores both and encodes everything.

    Args:
        content_dir: Folder of guides.
        index_dir: Folder holding the generations and the `current` link.
        embedder: Encoder for passages; its `name` is recorded in the manifest.
        full: Re-embed and rewrite everything instead of reusing cached vectors.
        progress: Show a progress bar while embedding.
        keep: Generations to keep, the live one included.
        force: Build even when the content is unchanged.
        grace: Seconds a retired generation is kept for servers still finishing requests on it.
        before_swap: Test hook called with the finished temporary folder before the swap.
        after_embed: Test hook called once the vectors are computed and cached.

    Raises:
        ContentError: listing every broken guide; the index is not touched.
    """
    started = time.perf_counter()
    content_dir, index_dir = Path(content_dir), Path(index_dir)
    guides, problems = load_guides(content_dir, today)
    glossary = Glossary.load(content_dir)
    if any(p.level == "error" for p in problems):
        raise ContentError(problems)
    if not guides:
        raise ContentError(
            [
                Problem(
                    str(content_dir),
                    0,
                    0,
                    "error",
                    "no guides found",
                    "add content/<category>/<slug>.md files",
                    "content.empty",
                )
            ]
        )
    report = BuildReport(warnings=[p for p in problems if p.level != "error"], guides=len(guides), full=full)
    chash = content_hash(guides, glossary)

    with _build_lock(index_dir):
        report.debris_removed = _remove_debris(index_dir)
        prev_gen, prev_manifest, prev_chunks, prev_vectors = _previous(index_dir, embedder.name, full)
        # a generation of an older format lends its vectors, nothing else
        same_format = prev_manifest is not None and prev_manifest.get("format_version") == FORMAT_VERSION
        if same_format and prev_manifest.get("content_hash") == chash and not (full or force):
            report.skipped = True
            report.generation = prev_gen.name if prev_gen else ""
            report.chunks = prev_manifest["counts"]["chunks"]
            report.generations_removed = _cleanup(index_dir, keep, grace)
            report.seconds = time.perf_counter() - started
            return report

        old_guides: dict[str, str] = (prev_manifest or {}).get("guides", {})
        new_guides = {g.slug: g.content_hash for g in guides}
        report.added = sorted(set(new_guides) - set(old_guides))
        report.removed = sorted(set(old_guides) - set(new_guides))
        report.changed = sorted(s for s in new_guides if s in old_guides and old_guides[s] != new_guides[s])

        chunks = _chunks(guides, old_guides, prev_manifest, prev_chunks, full)
        report.chunks = len(chunks)
        vectors = _embed(index_dir, embedder, chunks, prev_chunks, prev_vectors, full, progress, report)
        if after_embed:
            after_embed(report)

        touched = set(report.added) | set(report.changed) | set(report.removed)
        incremental = same_format and not full and len(touched) * 2 < max(len(new_guides), 1)
        gen_name = _write_generation(
            index_dir,
            chunks,
            vectors,
            glossary,
            {
                "model": embedder.name,
                "content_hash": chash,
                "guides": new_guides,
                "counts": {"guides": len(guides), "chunks": len(chunks)},
                "chunker": CHUNKER_FINGERPRINT,
            },
            started,
            keyword_from=(prev_gen, touched) if incremental else None,  # type: ignore[arg-type]
            before_swap=before_swap,
        )
        if incremental:
            report.keyword_mode = f"updated ({len(touched)} guide{'s' if len(touched) != 1 else ''})"
        report.generations_removed = _cleanup(index_dir, keep, grace)
        report.generation = gen_name
        report.seconds = time.perf_counter() - started
        log.info(report.summary().splitlines()[0])
        return report


def _chunks(
    guides: list[Guide], old_guides: dict[str, str], prev_manifest: dict | None, prev_chunks: list[Chunk], full: bool
) -> list[Chunk]:
    """Chunk every guide, copying the chunks of unchanged guides from the live generation.

    Rendering Markdown is most of a build's time after embedding; an unchanged guide (same file
    hash, same chunking code) has the same chunks as before.
    """
    reusable: dict[str, list[Chunk]] = {}
    if not full and prev_manifest and prev_manifest.get("chunker") == CHUNKER_FINGERPRINT:
        for c in prev_chunks:
            reusable.setdefault(c.slug, []).append(c)
    chunks: list[Chunk] = []
    failed: list[Problem] = []
    for g in guides:
        if g.slug in reusable and old_guides.get(g.slug) == g.content_hash:
            chunks.extend(reusable[g.slug])
            continue
        try:
            chunks.extend(chunk_guide(g, render_markdown(g.body)))
        except RenderError as exc:  # past the loader's limits, still too much for the renderer
            failed.append(Problem(g.path, g.body_line, 1, "error", exc.message, RENDER_HINT, "body.render"))
    if failed:
        raise ContentError(failed)
    return chunks


def _embed(
    index_dir: Path,
    embedder: Embedder,
    chunks: list[Chunk],
    prev_chunks: list[Chunk],
    prev_vectors: np.ndarray | None,
    full: bool,
    progress: bool,
    report: BuildReport,
) -> np.ndarray:
    """Vectors for `chunks`: from the cache or the live generation where possible, encoded otherwise.

    The cache is saved (atomically) before the generation is written, so the work survives a
    build that fails later: the retry encodes nothing again.
    """
    cache = (
        EmbeddingCache(cache_path(index_dir, embedder.name), embedder.name)
        if full
        else EmbeddingCache.load(index_dir, embedder.name)
    )
    live: dict[str, int] = {}
    if prev_vectors is not None:
        for row, c in enumerate(prev_chunks):
            live.setdefault(c.text_hash, row)
    hashes = [c.text_hash for c in chunks]
    found: dict[str, np.ndarray] = {}
    for h in hashes:
        if h in found:
            continue
        vec = cache.get(h)
        if vec is None and h in live:
            vec = np.asarray(prev_vectors[live[h]], dtype=np.float32)  # type: ignore[index]
        if vec is not None:
            found[h] = vec
    dims = {len(v) for v in found.values()}
    if len(dims) > 1:  # vectors of different widths under one model name: trust none of them
        log.warning("cached vectors disagree in dimension %s; re-embedding everything", sorted(dims))
        found = {}
    todo_hashes = list(dict.fromkeys(h for h in hashes if h not in found))
    todo_index = {h: i for i, h in enumerate(todo_hashes)}
    first_of = {}
    for c, h in zip(chunks, hashes, strict=True):
        first_of.setdefault(h, c)
    report.reused_from_cache = sum(1 for h in hashes if cache.get(h) is not None and h in found)
    t0 = time.perf_counter()
    fresh = embedder.encode([first_of[h].embed_text for h in todo_hashes], progress=progress) if todo_hashes else None
    report.embed_seconds = time.perf_counter() - t0
    report.encoder = getattr(embedder, "last_backend", "")
    if fresh is not None:
        if found and fresh.shape[1] != len(next(iter(found.values()))):
            log.warning(
                "the model now gives %d-dimensional vectors, the cache holds others; re-embedding everything",
                fresh.shape[1],
            )
            return _embed(index_dir, embedder, chunks, [], None, True, progress, report)
        for h, i in todo_index.items():
            found[h] = fresh[i]
    dim = len(next(iter(found.values())))
    vectors = np.zeros((len(chunks), dim), dtype=np.float32)
    for i, h in enumerate(hashes):
        vectors[i] = found[h]
    embedded = [h not in todo_index for h in hashes]
    report.embedded = sum(1 for e in embedded if not e)
    report.reused = len(chunks) - report.embedded
    per_guide: dict[str, list[int]] = {}
    for c, reused in zip(chunks, embedded, strict=True):
        counts = per_guide.setdefault(c.slug, [0, 0])
        counts[0] += 0 if reused else 1
        counts[1] += 1
    report.embedded_by_guide = {s: v for s, v in per_guide.items() if v[0]}
    new_cache = cache.updated({h: found[h] for h in hashes})
    try:
        new_cache.save()
        report.cache_entries = len(new_cache)
    except OSError as exc:  # a cache that cannot be written only costs the next build time
        log.warning("could not save the embedding cache %s (%s); the next build re-embeds more", new_cache.path, exc)
    return vectors


def build_from_chunks(
    index_dir: Path | str,
    chunks: list[Chunk],
    vectors: np.ndarray,
    model: str,
    *,
    glossary: Glossary | None = None,
    keep: int = 2,
) -> BuildReport:
    """Make a generation from chunks whose vectors are already computed, and make it live.

    For corpora that do not come from a content folder (benchmarks, imports): the same files, manifest
    and atomic swap as `build_index`, without reading guides or running the encoder.

    Args:
        index_dir: Folder holding the generations and the `current` link.
        chunks: The passages, in row order.
        vectors: (len(chunks), dim) float32 unit vectors, row i for chunks[i].
        model: Model name recorded in the manifest (a Searcher refuses a different one).
        glossary: Acronyms for query expansion (none by default).
        keep: Generations to keep, the live one included.
    """
    started = time.perf_counter()
    index_dir = Path(index_dir)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(chunks):
        raise ValueError(f"need one vector per chunk: {len(chunks)} chunks, vectors of shape {vectors.shape}")
    glossary = glossary or Glossary(())
    h = hashlib.sha256()
    for c in chunks:
        h.update(c.id.encode() + b"\0" + c.text_hash.encode())
    slugs = {c.slug: "" for c in chunks}
    report = BuildReport(guides=len(slugs), chunks=len(chunks), added=sorted(slugs))
    with _build_lock(index_dir):
        fields = {
            "model": model,
            "content_hash": h.hexdigest(),
            "guides": slugs,
            "counts": {"guides": len(slugs), "chunks": len(chunks)},
        }
        report.generation = _write_generation(index_dir, chunks, vectors, glossary, fields, started)
        _cleanup(index_dir, keep)
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class IndexStatus:
    """How the live index compares to the content folder."""

    built: bool
    generation: str = ""
    stale: bool = True
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    reason: str = ""


def index_status(
    content_dir: Path | str, index_dir: Path | str, model: str | None = None, today: dt.date | None = None
) -> IndexStatus:
    """Compare the live manifest with the guides on disk (by content hash); `today` as for load_guides."""
    gen = current_path(index_dir)
    if gen is None:
        return IndexStatus(False, reason="no index built")
    try:
        manifest = read_manifest(gen)
        check_files(gen, manifest, hashes=False)
    except KBError as exc:
        return IndexStatus(False, gen.name, reason=exc.message)
    if model and manifest.get("model") != model:
        return IndexStatus(True, gen.name, True, reason=f"built with model {manifest.get('model')}, configured {model}")
    guides, _ = load_guides(content_dir, today)
    glossary_ok = True
    try:
        glossary = Glossary.load(content_dir)
    except ContentError:
        glossary, glossary_ok = Glossary(()), False
    old = manifest.get("guides", {})
    new = {g.slug: g.content_hash for g in guides}
    st = IndexStatus(True, gen.name)
    st.added = sorted(set(new) - set(old))
    st.removed = sorted(set(old) - set(new))
    st.changed = sorted(s for s in new if s in old and old[s] != new[s])
    st.stale = bool(st.added or st.removed or st.changed) or (
        glossary_ok and manifest.get("content_hash") != content_hash(guides, glossary)
    )
    st.reason = "content changed since the last build" if st.stale else "up to date"
    return st
