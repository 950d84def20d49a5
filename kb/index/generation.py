"""The index generation: its files and format version, written, opened, checked, swapped in and retired here alone.

Layout of the index folder:

    index/current        symlink to the live generation (replaced atomically)
    index/gen-<stamp>/   manifest.json, chunks.jsonl, vectors.npy, vectors.faiss, whoosh/, glossary.json,
                         vocabulary.json, short_forms.json
    index/.tmp-<stamp>/  a build in progress; never read by a server
    index/cache/         embedding cache: vectors keyed by (model, chunk text hash)
    index/encoders/      the model's ONNX export for queries (kb.engines.embedding), one folder per model

A build that fails or is killed leaves `current` untouched; the next build removes its debris.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from kb.content.chunking import Chunk
from kb.content.glossary import Glossary, Term, short_forms
from kb.content.guide import Guide, load_guides
from kb.engines import keyword_index, vector_index
from kb.engines.embedding import ENCODERS_DIR, export_debris, sha256_file
from kb.engines.embedding_cache import CACHE_DIR
from kb.engines.keyword_index import KeywordIndex
from kb.engines.spelling import Vocabulary, section_text
from kb.engines.vector_index import VectorIndex
from kb.errors import ContentError, IndexMismatchError, IndexNotBuiltError, KBError

log = logging.getLogger(__name__)

# 2: BM25 idf of Robertson/Sparck Jones in the exported keyword postings (1: whoosh's own idf); vocabulary.json,
# short_forms.json
FORMAT_VERSION = 2
MANIFEST_FILE = "manifest.json"
CHUNKS_FILE = "chunks.jsonl"
VECTORS_FILE = "vectors.npy"
FAISS_FILE = "vectors.faiss"
KEYWORD_DIR = "whoosh"
GLOSSARY_FILE = "glossary.json"
VOCABULARY_FILE = "vocabulary.json"
SHORT_FORMS_FILE = "short_forms.json"
CURRENT = "current"
BUILD_COMMAND = "python scripts/build_index.py"
# A retired generation stays on disk this long, for servers finishing requests on it (see retire).
GRACE_SECONDS = 30.0

# What a manifest must hold, and of which type: a manifest of another shape is damage, never a crash.
MANIFEST_FIELDS: dict[str, type] = {
    "format_version": int,
    "model": str,
    "dimension": int,
    "files": dict,
    "counts": dict,
    "guides": dict,
}


def content_hash(guides: list[Guide], glossary: Glossary) -> str:
    """The manifest's `content_hash`: every guide's hash and the glossary, so an edit to either is noticed."""
    h = hashlib.sha256()
    for g in sorted(guides, key=lambda g: g.slug):
        h.update(f"{g.slug}:{g.content_hash}\n".encode())
    h.update(json.dumps([asdict(t) for t in glossary.terms], sort_keys=True).encode())
    return h.hexdigest()


# ---- finding the live generation ------------------------------------------------------------------


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


def has_manifest(generation: Path) -> bool:
    """True while the generation folder still holds its manifest (a removed generation does not)."""
    return (generation / MANIFEST_FILE).exists()


# ---- checking one -----------------------------------------------------------------------------------


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
    path = generation / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexNotBuiltError(
            f"the index generation {generation.name} has no manifest.json (partial build?); run `{BUILD_COMMAND}`"
        ) from exc
    except (OSError, ValueError) as exc:
        raise IndexNotBuiltError(
            f"the manifest.json of index generation {generation.name} is unreadable or corrupted; "
            f"run `{BUILD_COMMAND} --full`"
        ) from exc
    problem = _manifest_shape_problem(manifest)
    if problem:
        raise IndexNotBuiltError(
            f"the manifest.json of index generation {generation.name} is damaged ({problem}); "
            f"run `{BUILD_COMMAND} --full`"
        )
    if manifest.get("format_version") != FORMAT_VERSION and not any_format:
        raise IndexMismatchError(
            f"the index format is {manifest.get('format_version')!r}, this code reads {FORMAT_VERSION}; "
            f"run `{BUILD_COMMAND}` (it reuses the embeddings)"
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
                f"the index file {rel} in {generation.name} is corrupted (checksum mismatch); "
                f"run `{BUILD_COMMAND} --full` to rebuild it"
            )
        stats[rel] = (st.st_size, st.st_mtime_ns)
    return stats


def file_problems(generation: Path, manifest: dict) -> tuple[list[str], list[str]]:
    """Every file the manifest lists that is missing, and every one whose checksum differs: (missing, altered)."""
    missing, altered = [], []
    for rel, digest in (manifest.get("files") or {}).items():
        path = generation / rel
        if not path.is_file():
            missing.append(rel)
        elif sha256_file(path) != digest:
            altered.append(rel)
    return missing, altered


def unlisted_files(generation: Path, manifest: dict) -> list[str]:
    """Files in the generation folder that the manifest does not list (a server never reads them)."""
    listed = set(manifest.get("files") or {}) | {MANIFEST_FILE}
    return sorted(
        str(p.relative_to(generation))
        for p in generation.rglob("*")
        if p.is_file() and not p.name.endswith(".lock") and str(p.relative_to(generation)) not in listed
    )


# ---- opening one ------------------------------------------------------------------------------------


def read_chunks(generation: Path) -> list[Chunk]:
    """The generation's passages, in the row order of its vectors."""
    with open(generation / CHUNKS_FILE, encoding="utf-8") as fh:
        return [Chunk.from_dict(json.loads(line)) for line in fh if line.strip()]


def read_vectors(generation: Path, *, mmap: bool = True) -> np.ndarray:
    """The generation's (chunks, dimension) float32 unit vectors, row i for chunk i."""
    return np.load(generation / VECTORS_FILE, mmap_mode="r" if mmap else None)


def open_vectors(generation: Path) -> VectorIndex:
    """The generation's FAISS index, memory-mapped read-only."""
    return VectorIndex(generation / FAISS_FILE)


def open_keyword(generation: Path) -> KeywordIndex:
    """The generation's keyword index; the caller closes it."""
    return KeywordIndex(generation / KEYWORD_DIR)


def _read_glossary(generation: Path) -> Glossary:
    data = json.loads((generation / GLOSSARY_FILE).read_text(encoding="utf-8"))
    return Glossary(
        tuple(
            Term(**{**t, "aliases": tuple(t.get("aliases", ())), "synonyms": tuple(t.get("synonyms", ()))})
            for t in data
        )
    )


def _read_short_forms(generation: Path, glossary: Glossary) -> dict[tuple[str, ...], Term]:
    by_name = {t.term: t for t in glossary.terms}
    return {
        tuple(str(w) for w in item["prefix"]): by_name[item["term"]]
        for item in json.loads((generation / SHORT_FORMS_FILE).read_text(encoding="utf-8"))
    }


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


class IndexFiles:
    """One generation's files, checked against its manifest and opened for reading; immutable once loaded.

    Raises (from the constructor):
        IndexNotBuiltError: a missing, altered, unreadable or inconsistent file.
        IndexMismatchError: another format version, model or vector dimension.
    """

    def __init__(self, path: Path, model: str | None):
        self.path = path
        self.manifest = read_manifest(path)
        self.name: str = self.manifest.get("generation", path.name)
        if model is not None and self.manifest.get("model") != model:
            raise IndexMismatchError(
                f"the index was built with model '{self.manifest.get('model')}' but the site is configured for "
                f"'{model}'; run `{BUILD_COMMAND} --full` to rebuild it with the configured model"
            )
        # every listed file present and matching its checksum before any parser sees it
        stats = check_files(path, self.manifest)
        try:
            self.files = {**stats, MANIFEST_FILE: _stat(path / MANIFEST_FILE)}
            self.chunks = read_chunks(path)
            self.vectors = open_vectors(path)
            self.keyword = open_keyword(path)
            self.glossary = _read_glossary(path)
            # counted and found by the build, so loading never reads every section's words
            self.vocabulary = Vocabulary.from_dict(json.loads((path / VOCABULARY_FILE).read_text(encoding="utf-8")))
            # clear short forms of long glossary names (kb.content.glossary.short_forms)
            self.short_forms = _read_short_forms(path, self.glossary)
        except KBError:
            raise
        except Exception as exc:
            raise IndexNotBuiltError(
                f"the index generation {path.name} is incomplete or corrupted ({exc.__class__.__name__}); "
                f"run `{BUILD_COMMAND} --full`"
            ) from exc
        self._check_consistent()
        self.by_id = {c.id: c for c in self.chunks}
        self._row_of = {c.id: row for row, c in enumerate(self.chunks)}

    def vector_of(self, chunk_id: str) -> np.ndarray:
        """The stored embedding of one section (unit length, as the index holds it)."""
        return self.vectors.reconstruct(self._row_of[chunk_id])

    def cosine(self, chunk_id: str, vector: np.ndarray) -> float:
        """One section's exact cosine with a (unit-length) query vector, whether or not a search found it."""
        return float(np.dot(self.vector_of(chunk_id), vector))

    def _check_consistent(self) -> None:
        counts = self.manifest["counts"]
        if not (len(self.chunks) == self.vectors.count == self.keyword.doc_count() == counts.get("chunks")):
            raise IndexNotBuiltError(
                f"the index generation {self.path.name} is inconsistent (chunks {len(self.chunks)}, "
                f"vectors {self.vectors.count}, keyword docs {self.keyword.doc_count()}, "
                f"manifest {counts.get('chunks')}); run `{BUILD_COMMAND} --full`"
            )
        if self.vectors.dimension != self.manifest.get("dimension"):
            raise IndexMismatchError(
                f"vector dimension {self.vectors.dimension} differs from the manifest; run `{BUILD_COMMAND} --full`"
            )

    @property
    def guides(self) -> dict[str, str]:
        """slug -> content hash of every guide this generation was built from."""
        return self.manifest["guides"]

    @property
    def model(self) -> str:
        return self.manifest["model"]

    @property
    def built_at(self) -> str | None:
        return self.manifest.get("built_at")

    def close(self) -> None:
        self.keyword.close()

    def intact(self) -> bool:
        """True while no file of this generation has been removed or replaced since it was loaded (stat only)."""
        try:
            return all(_stat(self.path / rel) == st for rel, st in self.files.items())
        except OSError:
            return False


# ---- writing one ------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_files(
    tmp: Path,
    chunks: list[Chunk],
    vectors: np.ndarray,
    glossary: Glossary,
    keyword_from: tuple[Path, set[str]] | None,
) -> None:
    """Every file of a generation but the manifest."""
    with open(tmp / CHUNKS_FILE, "w", encoding="utf-8") as fh:
        for c in chunks:
            fh.write(json.dumps(c.as_dict(), ensure_ascii=False) + "\n")
    np.save(tmp / VECTORS_FILE, vectors)
    vector_index.build(tmp / FAISS_FILE, vectors)
    (tmp / GLOSSARY_FILE).write_text(
        json.dumps([asdict(t) for t in glossary.terms], ensure_ascii=False), encoding="utf-8"
    )
    # the words spelling suggestions draw on, counted once here rather than by every server process
    texts = [section_text(c.title, c.heading_path, c.text) for c in chunks]
    (tmp / VOCABULARY_FILE).write_text(json.dumps(Vocabulary(texts).as_dict(), ensure_ascii=False), encoding="utf-8")
    shorts = [
        {"prefix": list(k), "term": t.term}
        for k, t in short_forms(glossary.terms, texts, lambda w: bool(keyword_index.analyse(w))).items()
    ]
    (tmp / SHORT_FORMS_FILE).write_text(json.dumps(shorts, ensure_ascii=False), encoding="utf-8")
    if keyword_from is not None:
        prev_gen, touched = keyword_from
        shutil.copytree(prev_gen / KEYWORD_DIR, tmp / KEYWORD_DIR)
        keyword_index.update(tmp / KEYWORD_DIR, touched, [c for c in chunks if c.slug in touched])
    else:
        keyword_index.build(tmp / KEYWORD_DIR, chunks)


def _write_manifest(tmp: Path, gen_name: str, dimension: int, fields: dict, started: float) -> None:
    """Checksum every file (fsynced first), then write the manifest that lists them."""
    files = {}
    for p in sorted(tmp.rglob("*")):
        if p.is_file() and not p.name.endswith(".lock"):
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
            files[str(p.relative_to(tmp))] = sha256_file(p)
    manifest = {
        "format_version": FORMAT_VERSION,
        "generation": gen_name,
        "model": fields["model"],
        "dimension": dimension,
        "chunking": fields["chunking"],
        "content_hash": fields["content_hash"],
        "guides": fields["guides"],
        "counts": fields["counts"],
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "build_seconds": round(time.perf_counter() - started, 3),
        "files": files,
    }
    if "chunker" in fields:
        manifest["chunker"] = fields["chunker"]
    with open(tmp / MANIFEST_FILE, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(manifest, indent=2))
        fh.flush()
        os.fsync(fh.fileno())


def write_generation(
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

    Args:
        index_dir: Folder holding the generations and the `current` link.
        chunks: The passages, in row order.
        vectors: One unit vector per chunk.
        glossary: Acronyms, stored for query expansion.
        manifest_fields: `model`, `chunking`, `content_hash`, `guides`, `counts` and optionally `chunker`.
        started: perf_counter() at the start of the build, for `build_seconds`.
        keyword_from: (previous generation, touched slugs): update a copy of the previous keyword
            index in place instead of rewriting it.
        before_swap: Test hook called with the finished temporary folder before the swap.

    Returns:
        The new generation's name.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    gen_name = f"gen-{stamp}"
    tmp = index_dir / f".tmp-{stamp}"
    link_tmp = index_dir / f".tmp-link-{stamp}"
    try:
        tmp.mkdir(parents=True)
        _write_files(tmp, chunks, vectors, glossary, keyword_from)
        _write_manifest(tmp, gen_name, int(vectors.shape[1]), manifest_fields, started)
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


# ---- retiring them -----------------------------------------------------------------------------------


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
            written = (gen / MANIFEST_FILE).stat().st_mtime_ns
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


def remove_debris(index_dir: Path) -> int:
    """Delete leftovers of interrupted builds; only called while holding the build lock."""
    found = debris(index_dir)
    for path in found:
        log.info("removing %s, left by an interrupted build", path.name)
        _remove(path)
    return len(found)


def retire(index_dir: Path, keep: int, grace: float = GRACE_SECONDS) -> list[str]:
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
            retired_at = (successor / MANIFEST_FILE).stat().st_mtime if successor else 0.0
        except OSError:
            retired_at = 0.0
        if now - retired_at < grace:
            continue
        shutil.rmtree(gen, ignore_errors=True)
        removed.append(gen.name)
    return removed


# ---- the live generation against the content folder ---------------------------------------------------


@dataclass(frozen=True)
class ContentHashes:
    """The content folder as a manifest records it: each guide's hash, and the content hash of everything."""

    guides: dict[str, str]
    content_hash: str | None  # None when glossary.yml is unreadable: then only the guides can be compared


def content_hashes(content_dir: Path | str, today: dt.date | None = None) -> ContentHashes:
    """Read and hash every guide and the glossary (the costly part of a status check)."""
    guides, _ = load_guides(content_dir, today)
    try:
        chash: str | None = content_hash(guides, Glossary.load(content_dir))
    except ContentError:
        chash = None
    return ContentHashes({g.slug: g.content_hash for g in guides}, chash)


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


def guide_changes(built: Mapping[str, str], now: Mapping[str, str]) -> tuple[list[str], list[str], list[str]]:
    """(added, removed, changed) slugs between a manifest's guide hashes and the content's, each sorted."""
    added = sorted(set(now) - set(built))
    removed = sorted(set(built) - set(now))
    changed = sorted(s for s in now if s in built and built[s] != now[s])
    return added, removed, changed


def index_status(
    content_dir: Path | str,
    index_dir: Path | str,
    model: str | None = None,
    today: dt.date | None = None,
    *,
    content: Callable[[], ContentHashes] | None = None,
) -> IndexStatus:
    """Compare the live manifest with the guides on disk (by content hash); `today` as for load_guides.

    `content` supplies the content folder's hashes (a caller that remembers them between calls passes
    its own); by default they are read afresh, and only once the live generation is known to be usable.
    """
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
    now = content() if content is not None else content_hashes(content_dir, today)
    old, new = manifest["guides"], now.guides
    st = IndexStatus(True, gen.name)
    st.added, st.removed, st.changed = guide_changes(old, new)
    st.stale = bool(st.added or st.removed or st.changed) or (
        now.content_hash is not None and manifest.get("content_hash") != now.content_hash
    )
    st.reason = "content changed since the last build" if st.stale else "up to date"
    return st
