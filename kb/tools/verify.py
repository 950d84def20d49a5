"""Index verification: the live manifest against its files, the configured model and the content folder."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from kb.content.chunking import Chunk
from kb.content.glossary import Glossary
from kb.content.guide import load_guides
from kb.engines.embedding import export_problem, make_encoder, resolve_model
from kb.engines.embedding_cache import EmbeddingCache, cache_path
from kb.errors import ContentError, KBError
from kb.index.generation import (
    BUILD_COMMAND,
    CHUNKS_FILE,
    CURRENT,
    FAISS_FILE,
    KEYWORD_DIR,
    MANIFEST_FILE,
    VECTORS_FILE,
    IndexFiles,
    content_hash,
    current_path,
    current_problem,
    debris,
    file_problems,
    guide_changes,
    open_keyword,
    open_vectors,
    read_chunks,
    read_manifest,
    read_vectors,
    unlisted_files,
)

OK, WARN, FAIL = "ok", "warn", "fail"
FULL_COMMAND = f"{BUILD_COMMAND} --full"


@dataclass
class Check:
    """One verified property of the index, with what was found."""

    name: str
    status: str
    detail: str


@dataclass
class Verification:
    """Everything `flask kb verify` found; `command` is what the maintainer should run next."""

    index_dir: str
    generation: str = ""
    summary: str = ""
    checks: list[Check] = field(default_factory=list)
    stale: bool = False
    command: str = ""
    # damage that does not stop search and that the plain build repairs, e.g. "the query encoder export is damaged"
    repairs: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return bool(self.generation) and not any(c.status == FAIL for c in self.checks)

    @property
    def exit_code(self) -> int:
        """0 healthy and up to date; 1 missing or damaged; 2 serving, but the plain build has work to do."""
        if not self.healthy:
            return 1
        return 2 if self.stale or self.repairs else 0

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    def verdict(self) -> str:
        if not self.healthy:
            state = "NOT healthy: searches fail or use a damaged index until it is rebuilt"
        elif self.stale or self.repairs:
            state = "healthy and serving, but " + " and ".join(
                (["behind the content"] if self.stale else []) + self.repairs
            )
        else:
            state = "healthy and up to date"
        then = f"Run: {self.command}" if self.command else "Nothing to run."
        return f"Result: {state}. {then}"

    def format(self) -> str:
        lines = [f"Index: {self.summary or self.index_dir}"]
        width = max((len(c.name) for c in self.checks), default=8)
        for c in self.checks:
            lines.append(f"  {c.status:<4}  {c.name:<{width}}  {c.detail}")
        lines.append(self.verdict())
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "ok": self.healthy,
            "healthy": self.healthy,
            "stale": self.stale,
            "repairs": self.repairs,
            "index_dir": self.index_dir,
            "generation": self.generation,
            "command": self.command,
            "checks": [asdict(c) for c in self.checks],
            "exit_code": self.exit_code,
        }


def _model_dimension(source: str) -> int | None:
    """The output width a sentence-transformers folder declares, read from its config (no model load)."""
    folder = Path(source)
    for rel, key in (("1_Pooling/config.json", "word_embedding_dimension"), ("config.json", "hidden_size")):
        try:
            return int(json.loads((folder / rel).read_text(encoding="utf-8"))[key])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def _short(items: list[str], n: int = 8) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def verify_index(index_dir: Path | str, content_dir: Path | str, model: str) -> Verification:
    """Check the live generation: manifest, checksums, counts, model, dimension, cache, content, debris.

    Args:
        index_dir: Folder holding the generations and the `current` link.
        content_dir: Folder of guides the index should reflect.
        model: The KB_MODEL setting the site will search with.

    Returns:
        A Verification; nothing is raised for a broken index, it is reported.
    """
    index_dir, content_dir = Path(index_dir), Path(content_dir)
    v = Verification(str(index_dir))
    try:
        model_name, source = resolve_model(model)
    except KBError as exc:
        model_name, source = model, ""
        v.add("model", FAIL, exc.message)

    gen = current_path(index_dir)
    if gen is None:
        v.add("index", FAIL, f"{current_problem(index_dir)} ({index_dir / CURRENT})")
        v.command = BUILD_COMMAND
        _check_encoder(v, index_dir, model)
        _check_debris(v, index_dir)
        return v
    v.generation = gen.name
    try:
        manifest = read_manifest(gen)
    except KBError as exc:
        v.add("manifest", FAIL, f"{exc.message} ({gen / MANIFEST_FILE})")
        v.command = FULL_COMMAND
        return v
    v.summary = _summary(index_dir, gen, manifest)

    # each check runs (and reports) even when an earlier one failed; the costly reads only on sound files
    sound = [
        _check_model(v, manifest, model_name),
        _check_dimension(v, manifest, source),
        _check_files(v, gen, manifest),
    ]
    chunks = _check_counts(v, gen, manifest) if all(sound) else None
    broken = chunks is None or not _check_loads(v, gen, model_name)
    if not broken and chunks:
        _check_cache(v, index_dir, manifest, chunks, gen)
    _check_content(v, content_dir, manifest)
    _check_encoder(v, index_dir, model)
    _check_debris(v, index_dir)
    gens = sorted(p.name for p in index_dir.glob("gen-*"))
    v.add("generations", OK, f"{len(gens)} on disk (live {gen.name}); older ones are removed by the next build")

    if broken:
        v.command = FULL_COMMAND
    elif v.stale or v.repairs:
        v.command = BUILD_COMMAND
    return v


def _summary(index_dir: Path, gen: Path, manifest: dict) -> str:
    counts = manifest["counts"]
    return (
        f"{index_dir / CURRENT} -> {gen.name} (built {manifest.get('built_at', '?')}; "
        f"{counts.get('guides', '?')} guides, "
        f"{counts.get('chunks', '?')} chunks; {manifest.get('model')}, {manifest.get('dimension')} dimensions)"
    )


def _check_model(v: Verification, manifest: dict, model_name: str) -> bool:
    """The index was built with the configured model; True when it was."""
    if manifest.get("model") != model_name:
        v.add(
            "model",
            FAIL,
            f"index built with {manifest.get('model')!r}, the site is configured for {model_name!r} (KB_MODEL)",
        )
        return False
    v.add("model", OK, f"{model_name}, as configured")
    return True


def _check_dimension(v: Verification, manifest: dict, source: str) -> bool:
    """The manifest's dimension is what the model's own config declares; True unless they disagree."""
    expected = _model_dimension(source) if source else None
    if expected is None:
        return True
    if manifest.get("dimension") != expected:
        v.add("dimension", FAIL, f"manifest says {manifest.get('dimension')}, the model gives {expected}")
        return False
    v.add("dimension", OK, f"{expected}, as the model gives")
    return True


def _check_files(v: Verification, gen: Path, manifest: dict) -> bool:
    """Every listed file present with its checksum (all of them named, not just the first); True when so."""
    files = manifest["files"]
    missing, altered = file_problems(gen, manifest)
    extra = unlisted_files(gen, manifest)
    sound = False
    if not files:
        v.add("files", FAIL, "the manifest lists no files")
    elif missing or altered:
        parts = ([f"missing {_short(missing)}"] if missing else []) + (
            [f"checksum mismatch in {_short(altered)}"] if altered else []
        )
        v.add("files", FAIL, "; ".join(parts))
    else:
        v.add("files", OK, f"{len(files)} files present, every sha256 checksum matches")
        sound = True
    if extra:
        v.add("extra files", WARN, f"not in the manifest (ignored by the server): {_short(extra)}")
    return sound


def _check_counts(v: Verification, gen: Path, manifest: dict) -> list[Chunk] | None:
    """Chunks, vectors (npy and faiss), keyword documents and guides agree; the chunks, or None when they do not."""
    try:
        chunks = read_chunks(gen)
        problem = _count_problem(gen, manifest, chunks)
    except Exception as exc:  # any parser failure is a damaged index, reported not raised
        v.add("counts", FAIL, f"could not read the index files ({exc.__class__.__name__}: {str(exc)[:160]})")
        return None
    if problem:
        v.add("counts", FAIL, problem)
        return None
    n = manifest["counts"].get("chunks")
    guides = len({c.slug for c in chunks})
    v.add("counts", OK, f"{n} chunks = {n} vectors (npy and faiss) = {n} keyword documents; {guides} guides")
    return chunks


def _count_problem(gen: Path, manifest: dict, chunks: list[Chunk]) -> str | None:
    """What disagrees between the manifest and the generation's files, or None."""
    counts = manifest["counts"]
    n = counts.get("chunks")
    vectors = read_vectors(gen)
    faiss_index = open_vectors(gen)
    keyword = open_keyword(gen)
    try:
        kw_docs = keyword.doc_count()
    finally:
        keyword.close()
    found = {
        CHUNKS_FILE: len(chunks),
        VECTORS_FILE: int(vectors.shape[0]),
        FAISS_FILE: faiss_index.count,
        KEYWORD_DIR: kw_docs,
    }
    slugs = {c.slug for c in chunks}
    dims = {int(vectors.shape[1]), faiss_index.dimension}
    if any(x != n for x in found.values()):
        return f"manifest says {n} chunks; found " + ", ".join(f"{k} {x}" for k, x in found.items())
    if len({c.id for c in chunks}) != len(chunks):
        return "chunk ids are not unique"
    if slugs != set(manifest["guides"]) or len(slugs) != counts.get("guides"):
        return f"manifest says {counts.get('guides')} guides; the chunks cover {len(slugs)}"
    if dims != {manifest.get("dimension")}:
        return f"vectors are {sorted(dims)}-dimensional, the manifest says {manifest.get('dimension')}"
    sample = np.asarray(vectors[: min(len(vectors), 2000)], dtype=np.float32)
    norms = np.linalg.norm(sample, axis=1) if len(vectors) else np.ones(1)
    if not np.all(np.abs(norms - 1.0) < 1e-3):
        return f"some vectors are not unit length (damaged {VECTORS_FILE})"
    return None


def _check_loads(v: Verification, gen: Path, model_name: str) -> bool:
    """The generation opens as a server opens it; True when it does."""
    try:
        IndexFiles(gen, model_name).close()
    except KBError as exc:
        v.add("loads", FAIL, exc.message)
        return False
    v.add("loads", OK, "the server can load this generation")
    return True


def _check_cache(v: Verification, index_dir: Path, manifest: dict, chunks: list[Chunk], gen: Path) -> None:
    model = manifest.get("model", "")
    path = cache_path(index_dir, model)
    if not path.exists():
        v.add("cache", WARN, f"no embedding cache for {model}: the next build re-embeds every chunk once")
        return
    cache = EmbeddingCache.load(index_dir, model)
    if not len(cache):
        v.add("cache", WARN, f"{path.name} is unreadable: the next build re-embeds every chunk and rewrites it")
        return
    vectors = read_vectors(gen)
    absent, differ = 0, 0
    for i, c in enumerate(chunks):
        vec = cache.get(c.text_hash)
        if vec is None:
            absent += 1
        elif len(vec) != vectors.shape[1] or float(np.max(np.abs(vec - vectors[i]))) > 1e-4:
            differ += 1
    if differ:
        v.add(
            "cache",
            WARN,
            f"{differ} cached vectors differ from the live index; run `{FULL_COMMAND}` to re-embed and rewrite "
            "the cache",
        )
    elif absent:
        v.add("cache", WARN, f"{absent} of {len(chunks)} live chunks are not cached: the next build embeds them again")
    else:
        v.add("cache", OK, f"{len(cache)} vectors for {model}; all {len(chunks)} live chunks cached and identical")


def _check_content(v: Verification, content_dir: Path, manifest: dict) -> None:
    try:
        guides, problems = load_guides(content_dir)
    except ContentError as exc:
        v.add("content", WARN, f"cannot read {content_dir}: {exc.problems[0].message if exc.problems else exc.message}")
        return
    errors = [p for p in problems if p.level == "error"]
    if errors:
        v.add(
            "guides",
            WARN,
            f"{len(errors)} error(s) in the guides: the next build will refuse to run until they are fixed, e.g. "
            f"{errors[0].format()}",
        )
    old = manifest.get("guides", {})
    new = {g.slug: g for g in guides}
    added, removed, changed = guide_changes(old, {s: g.content_hash for s, g in new.items()})
    built = manifest.get("built_at", "")
    glossary_changed = False
    try:
        glossary = Glossary.load(content_dir)
        glossary_changed = not (added or removed or changed) and manifest.get("content_hash") != content_hash(
            guides, glossary
        )
    except ContentError:
        pass
    if added or removed or changed or glossary_changed:
        v.stale = True
        parts = []
        if changed:
            parts.append("changed " + _short([f"{new[s].category}/{s}.md ({_mtime(new[s].path)})" for s in changed]))
        if added:
            parts.append("new " + _short(added))
        if removed:
            parts.append("deleted " + _short(removed))
        if glossary_changed:
            parts.append("glossary.yml changed")
        v.add(
            "content",
            WARN,
            f"{len(added) + len(changed) + len(removed)} guide(s) differ from the index (built {built}): "
            + "; ".join(parts),
        )
    else:
        v.add("content", OK, f"all {len(guides)} guides in {content_dir} match the index")


def _mtime(path: str) -> str:
    try:
        stamp = dt.datetime.fromtimestamp(Path(path).stat().st_mtime, dt.UTC)
        return "edited " + stamp.isoformat(timespec="seconds")
    except OSError:
        return "edited ?"


def _check_encoder(v: Verification, index_dir: Path, model: str) -> None:
    """The ONNX export servers encode queries with: a damaged one makes every worker fall back to torch."""
    try:
        folder = make_encoder(model, index_dir).onnx_folder()
    except KBError:
        return  # the model itself is the problem, reported by the model check
    if folder is None or not (folder.exists() or folder.is_symlink()):
        v.add(
            "encoder",
            WARN,
            "no ONNX export of this model: servers encode queries with sentence-transformers (more memory); the "
            "build exports one where the model allows",
        )
        return
    problem = export_problem(folder, thorough=True)
    if problem:
        v.add(
            "encoder",
            WARN,
            f"the ONNX query encoder export {folder} is damaged ({problem}): servers fall back to "
            f"sentence-transformers, about twice the memory per worker; `{BUILD_COMMAND}` exports it again",
        )
        v.repairs.append("the query encoder export is damaged")
    else:
        v.add("encoder", OK, f"ONNX query encoder export {folder.name} loads and agrees with the model")


def _check_debris(v: Verification, index_dir: Path) -> None:
    leftovers = debris(index_dir)
    if leftovers:
        v.add(
            "leftovers",
            WARN,
            f"{_short([p.name for p in leftovers], 4)} left by an interrupted build; harmless (never served), "
            "the next build removes them",
        )
