"""kb.index.generation: one generation written, opened and checked through one module; the read side stays apart."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import numpy as np
import pytest

from kb.content.chunking import Chunk
from kb.content.glossary import Glossary
from kb.errors import IndexMismatchError, IndexNotBuiltError
from kb.index.generation import (
    MANIFEST_FILE,
    VECTORS_FILE,
    IndexFiles,
    current_path,
    file_problems,
    read_chunks,
    read_vectors,
    unlisted_files,
    write_generation,
)

ROOT = Path(__file__).resolve().parents[1]


def _chunk(i: int, slug: str) -> Chunk:
    return Chunk(
        id=f"{slug}#s{i}",
        slug=slug,
        title=slug.title(),
        category="psa",
        tags=("psa",),
        heading=f"Section {i}",
        heading_path=(f"Section {i}",),
        anchor=f"s{i}",
        text=f"passage number {i} of {slug}",
        position=i,
    )


@pytest.fixture
def written(tmp_path) -> tuple[Path, list[Chunk], np.ndarray]:
    chunks = [_chunk(i, slug) for slug in ("alpha", "beta") for i in range(3)]
    vectors = np.eye(len(chunks), 8, dtype=np.float32)
    fields = {
        "model": "test/model",
        "chunking": {"version": 1},
        "content_hash": "c0ffee",
        "guides": {"alpha": "a", "beta": "b"},
        "counts": {"guides": 2, "chunks": len(chunks)},
    }
    name = write_generation(tmp_path, chunks, vectors, Glossary(()), fields, time.perf_counter())
    assert current_path(tmp_path) == (tmp_path / name).resolve()
    return tmp_path / name, chunks, vectors


def test_written_generation_opens_with_what_was_written(written):
    gen, chunks, vectors = written
    files = IndexFiles(gen, "test/model")
    try:
        assert files.chunks == chunks == read_chunks(gen)
        assert np.array_equal(read_vectors(gen), vectors)
        assert files.vectors.count == files.keyword.doc_count() == len(chunks)
        assert files.guides == {"alpha": "a", "beta": "b"} and files.model == "test/model" and files.built_at
        assert (
            files.intact()
            and file_problems(gen, files.manifest) == ([], [])
            and not unlisted_files(gen, files.manifest)
        )
    finally:
        files.close()


def test_opening_refuses_another_model_and_a_replaced_file(written):
    gen, _, vectors = written
    with pytest.raises(IndexMismatchError, match="configured for 'other/model'"):
        IndexFiles(gen, "other/model")
    files = IndexFiles(gen, None)
    files.close()
    np.save(gen / VECTORS_FILE, vectors * 2)
    assert not files.intact()  # a stat-only check notices the replaced file
    assert file_problems(gen, files.manifest) == ([], [VECTORS_FILE])
    with pytest.raises(IndexNotBuiltError, match="checksum mismatch"):
        IndexFiles(gen, None)


def test_files_the_manifest_does_not_list_are_named(written):
    gen, _, _ = written
    (gen / "notes.txt").write_text("left here by hand")
    manifest = json.loads((gen / MANIFEST_FILE).read_text())
    assert unlisted_files(gen, manifest) == ["notes.txt"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


@pytest.mark.parametrize(
    "module",
    [*sorted((ROOT / "kb" / "search").glob("*.py")), ROOT / "kb" / "tools" / "verify.py", ROOT / "kb/service.py"],
)
def test_the_read_side_never_imports_the_build(module):
    assert "kb.index.build" not in _imports(module)
