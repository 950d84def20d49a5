"""The build pipeline: guides -> chunks -> embeddings -> index generation, swapped in atomically.

Layout of the index folder:

    index/current        symlink to the live generation (replaced atomically)
    index/gen-<stamp>/   manifest.json, chunks.jsonl, vectors.faiss, whoosh/, glossary.json
    index/.tmp-<stamp>/  a build in progress; never read by a server

A build that fails or is killed leaves `current` untouched; the next build removes its debris.
"""

from __future__ import annotations

import contextlib
import datetime as dt
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

from kb import keyword_index, vector_index
from kb.chunking import MAX_CHARS, Chunk, chunk_guide
from kb.content import Guide, load_guides
from kb.embedding import Embedder
from kb.errors import ContentError, IndexMismatchError, IndexNotBuiltError, KBError, Problem
from kb.glossary import Glossary
from kb.render import render_markdown

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CHUNKING = {"version": 1, "max_chars": MAX_CHARS, "split": "heading, then paragraph"}
CURRENT = "current"
BUILD_COMMAND = "python scripts/build_index.py"


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

    def summary(self) -> str:
        if self.skipped:
            return f"Index is up to date ({self.guides} guides, {self.chunks} chunks); nothing to do. Use --full to rebuild anyway."
        return (
            f"Built {self.generation}: {self.guides} guides "
            f"({len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed); "
            f"{self.chunks} chunks ({self.embedded} embedded, {self.reused} reused); "
            f"keyword index {self.keyword_mode}; {self.seconds:.2f} s"
        )

    def as_dict(self) -> dict:
        d = asdict(self)
        d["warnings"] = [p.as_dict() for p in self.warnings]
        return d


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_hash(guides: list[Guide], glossary: Glossary) -> str:
    h = hashlib.sha256()
    for g in sorted(guides, key=lambda g: g.slug):
        h.update(f"{g.slug}:{g.content_hash}\n".encode())
    h.update(json.dumps([asdict(t) for t in glossary.terms], sort_keys=True).encode())
    return h.hexdigest()


def current_path(index_dir: Path | str) -> Path | None:
    """The live generation folder, or None when no index has been built."""
    link = Path(index_dir) / CURRENT
    if not link.is_symlink() and not link.is_dir():
        return None
    target = link.resolve()
    return target if target.is_dir() else None


def read_manifest(generation: Path) -> dict:
    path = generation / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexNotBuiltError(f"the index at {generation} has no manifest.json (partial build?); run `{BUILD_COMMAND}`") from exc
    except (OSError, ValueError) as exc:
        raise IndexNotBuiltError(f"the index manifest at {path} is unreadable or corrupted; run `{BUILD_COMMAND} --full`") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatchError(f"the index format is {manifest.get('format_version')!r}, this code reads {FORMAT_VERSION}; run `{BUILD_COMMAND} --full`")
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
            raise IndexNotBuiltError(f"the index generation {generation.name} is missing {rel}; run `{BUILD_COMMAND} --full` to rebuild it") from exc
        if altered:
            raise IndexNotBuiltError(f"the index file {rel} in {generation.name} is corrupted (checksum mismatch); run `{BUILD_COMMAND} --full` to rebuild it")
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


def _previous(index_dir: Path, model: str, full: bool) -> tuple[Path | None, dict | None, list[Chunk], np.ndarray | None]:
    """The live generation to reuse embeddings from, if it is compatible."""
    gen = current_path(index_dir)
    if gen is None or full:
        return None, None, [], None
    try:
        manifest = read_manifest(gen)
        if manifest.get("model") != model or manifest.get("chunking") != CHUNKING:
            return None, None, [], None
        check_files(gen, manifest)  # a damaged live generation is rebuilt in full, never reused
        chunks = read_chunks(gen)
        vectors = np.load(gen / "vectors.npy", mmap_mode="r")
        if len(vectors) != len(chunks) or manifest.get("counts", {}).get("chunks") != len(chunks) or manifest.get("dimension") != vectors.shape[1]:
            return None, None, [], None
        return gen, manifest, chunks, vectors
    except (KBError, OSError, ValueError, KeyError) as exc:
        log.warning("previous index unusable for reuse (%s); building everything", exc)
        return None, None, [], None


def _cleanup(index_dir: Path, keep: int) -> None:
    live = current_path(index_dir)
    for tmp in index_dir.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    gens = sorted(index_dir.glob("gen-*"), key=lambda p: p.name, reverse=True)
    kept = 0
    for gen in gens:
        if gen == live or kept < keep - 1:
            kept += gen != live
            continue
        shutil.rmtree(gen, ignore_errors=True)


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
    before_swap: Callable[[Path], None] | None = None,
) -> BuildReport:
    """Build (incrementally) a new index generation and make it live.

    Args:
        content_dir: Folder of guides.
        index_dir: Folder holding the generations and the `current` link.
        embedder: Encoder for passages; its `name` is recorded in the manifest.
        full: Re-embed and rewrite everything instead of reusing the live generation.
        progress: Show a progress bar while embedding.
        keep: Generations to keep, the live one included.
        force: Build even when the content is unchanged.
        before_swap: Test hook called with the finished temporary folder before the swap.

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
        raise ContentError([Problem(str(content_dir), 0, 0, "error", "no guides found", "add content/<category>/<slug>.md files", "content.empty")])
    report = BuildReport(warnings=[p for p in problems if p.level != "error"], guides=len(guides))
    chash = content_hash(guides, glossary)

    with _build_lock(index_dir):
        prev_gen, prev_manifest, prev_chunks, prev_vectors = _previous(index_dir, embedder.name, full)
        if prev_manifest and prev_manifest.get("content_hash") == chash and not (full or force):
            report.skipped = True
            report.generation = prev_gen.name if prev_gen else ""
            report.chunks = prev_manifest["counts"]["chunks"]
            report.seconds = time.perf_counter() - started
            return report

        old_guides: dict[str, str] = (prev_manifest or {}).get("guides", {})
        new_guides = {g.slug: g.content_hash for g in guides}
        report.added = sorted(set(new_guides) - set(old_guides))
        report.removed = sorted(set(old_guides) - set(new_guides))
        report.changed = sorted(s for s in new_guides if s in old_guides and old_guides[s] != new_guides[s])

        chunks: list[Chunk] = []
        for g in guides:
            chunks.extend(chunk_guide(g, render_markdown(g.body)))
        report.chunks = len(chunks)

        reuse: dict[str, int] = {}
        if prev_vectors is not None:
            for row, c in enumerate(prev_chunks):
                reuse.setdefault(c.text_hash, row)
        hashes = [c.text_hash for c in chunks]
        todo = [i for i, h in enumerate(hashes) if h not in reuse]
        report.embedded, report.reused = len(todo), len(chunks) - len(todo)

        t0 = time.perf_counter()
        fresh = embedder.encode([chunks[i].embed_text for i in todo], progress=progress) if todo else None
        report.embed_seconds = time.perf_counter() - t0
        dim = int(fresh.shape[1]) if fresh is not None else int(prev_vectors.shape[1])  # type: ignore[union-attr]
        vectors = np.zeros((len(chunks), dim), dtype=np.float32)
        if fresh is not None:
            vectors[todo] = fresh
        todo_set = set(todo)
        for i, h in enumerate(hashes):
            if i not in todo_set:
                vectors[i] = prev_vectors[reuse[h]]  # type: ignore[index]

        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        gen_name = f"gen-{stamp}"
        tmp = index_dir / f".tmp-{stamp}"
        try:
            tmp.mkdir(parents=True)
            with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as fh:
                for c in chunks:
                    fh.write(json.dumps(c.as_dict(), ensure_ascii=False) + "\n")
            np.save(tmp / "vectors.npy", vectors)
            vector_index.build(tmp / "vectors.faiss", vectors)
            (tmp / "glossary.json").write_text(json.dumps([asdict(t) for t in glossary.terms], ensure_ascii=False), encoding="utf-8")

            touched = set(report.added) | set(report.changed) | set(report.removed)
            incremental = prev_gen is not None and not full and len(touched) * 2 < max(len(new_guides), 1)
            if incremental:
                shutil.copytree(prev_gen / "whoosh", tmp / "whoosh")
                keyword_index.update(tmp / "whoosh", touched, [c for c in chunks if c.slug in touched])
                report.keyword_mode = f"updated ({len(touched)} guides)"
            else:
                keyword_index.build(tmp / "whoosh", chunks)

            files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}
            manifest = {
                "format_version": FORMAT_VERSION,
                "generation": gen_name,
                "model": embedder.name,
                "dimension": dim,
                "chunking": CHUNKING,
                "content_hash": chash,
                "guides": new_guides,
                "counts": {"guides": len(guides), "chunks": len(chunks)},
                "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "build_seconds": round(time.perf_counter() - started, 3),
                "files": files,
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            _fsync_dir(tmp)
            if before_swap:
                before_swap(tmp)
            final = index_dir / gen_name
            os.rename(tmp, final)
            link_tmp = index_dir / f".tmp-link-{stamp}"
            os.symlink(gen_name, link_tmp)
            os.replace(link_tmp, index_dir / CURRENT)
            _fsync_dir(index_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _cleanup(index_dir, keep)
        report.generation = gen_name
        report.seconds = time.perf_counter() - started
        log.info(report.summary())
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


def index_status(content_dir: Path | str, index_dir: Path | str, model: str | None = None) -> IndexStatus:
    """Compare the live manifest with the guides on disk (by content hash)."""
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
    guides, _ = load_guides(content_dir)
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
    st.stale = bool(st.added or st.removed or st.changed) or (glossary_ok and manifest.get("content_hash") != content_hash(guides, glossary))
    st.reason = "content changed since the last build" if st.stale else "up to date"
    return st
