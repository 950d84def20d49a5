"""kb.build with a fake encoder: generations, atomic swap, incremental reuse, failures."""

import hashlib
import json
import os

import pytest

from kb.build import build_index, current_path, index_status
from kb.errors import ContentError, IndexMismatchError, IndexNotBuiltError
from kb.search import Searcher
from tests.conftest import MALFORMED


def tree_digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".build.lock":
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_build_writes_self_describing_generation(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    report = build_index(content_copy, index, fake_embedder)
    gen = current_path(index)
    manifest = json.loads((gen / "manifest.json").read_text())
    assert manifest["model"] == fake_embedder.name and manifest["dimension"] == 64
    assert manifest["counts"] == {"guides": 5, "chunks": report.chunks}
    assert set(manifest["files"]) >= {"chunks.jsonl", "vectors.faiss", "vectors.npy", "glossary.json"}
    assert report.embedded == report.chunks and report.reused == 0
    assert os.path.islink(index / "current")


def test_incremental_build_reembeds_only_changed_guide(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    first = build_index(content_copy, index, fake_embedder)
    again = build_index(content_copy, index, fake_embedder)
    assert again.skipped and again.embedded == 0
    path = content_copy / "psa" / "psa-resits.md"
    path.write_text(path.read_text() + "\n\n## Is there extra support?\n\nYes, ask your school.\n")
    third = build_index(content_copy, index, fake_embedder)
    assert third.changed == ["psa-resits"] and not third.added and not third.removed
    # only the new section is new text; every other chunk keeps its vector
    assert third.embedded == 1 and third.reused == first.chunks and third.chunks == first.chunks + 1
    assert third.keyword_mode.startswith("updated")
    (content_copy / "peer-support" / "study-groups.md").unlink()
    fourth = build_index(content_copy, index, fake_embedder)
    assert fourth.removed == ["study-groups"] and fourth.embedded == 0
    hits = Searcher(index, fake_embedder).search("extra support", mode="keyword").hits
    assert hits[0].id == "psa-resits#is-there-extra-support"
    assert not any(h.slug == "study-groups" for h in Searcher(index, fake_embedder).search("question banks", mode="keyword").hits)


def test_malformed_content_leaves_existing_index_byte_identical(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    build_index(content_copy, index, fake_embedder)
    before = tree_digest(index)
    with pytest.raises(ContentError) as info:
        build_index(MALFORMED, index, fake_embedder)
    assert len([p for p in info.value.problems if p.level == "error"]) >= 4
    assert tree_digest(index) == before


def test_failure_before_swap_keeps_previous_generation(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    build_index(content_copy, index, fake_embedder)
    live = current_path(index)

    def boom(tmp):
        raise OSError(28, "No space left on device")

    (content_copy / "psa" / "psa-resits.md").write_text((content_copy / "psa" / "psa-resits.md").read_text() + "\nMore.\n")
    with pytest.raises(OSError):
        build_index(content_copy, index, fake_embedder, before_swap=boom)
    assert current_path(index) == live
    assert not list(index.glob(".tmp-*"))
    assert Searcher(index, fake_embedder).search("resit", mode="keyword").hits


def test_old_generations_are_cleaned_up(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    for _ in range(4):
        build_index(content_copy, index, fake_embedder, force=True, keep=2)
    assert len(list(index.glob("gen-*"))) == 2


def test_index_status_reports_changes(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    assert not index_status(content_copy, index).built
    build_index(content_copy, index, fake_embedder)
    assert not index_status(content_copy, index).stale
    (content_copy / "psa" / "psa-resits.md").write_text((content_copy / "psa" / "psa-resits.md").read_text() + "\nMore.\n")
    st = index_status(content_copy, index)
    assert st.stale and st.changed == ["psa-resits"]


def test_searcher_errors_for_missing_and_mismatched_index(content_copy, tmp_path, fake_embedder, real_embedder):
    with pytest.raises(IndexNotBuiltError) as info:
        Searcher(tmp_path / "none", fake_embedder).search("psa")
    assert "scripts/build_index.py" in info.value.message
    index = tmp_path / "index"
    build_index(content_copy, index, fake_embedder)

    class Other:
        name = "another/model"

    with pytest.raises(IndexMismatchError) as info:
        Searcher(index, Other()).search("psa")
    assert "--full" in info.value.message and "another/model" in info.value.message
