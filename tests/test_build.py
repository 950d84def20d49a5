"""kb.index.build with a fake encoder: generations, atomic swap, incremental reuse, failures."""

import hashlib
import json
import os
import shutil

import pytest

from kb.errors import ContentError, IndexMismatchError, IndexNotBuiltError
from kb.index.build import build_index
from kb.index.generation import current_path, index_status
from kb.search.pipeline import Searcher
from kb.search.request import SearchRequest
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
    hits = Searcher(index, fake_embedder).search(SearchRequest("extra support", mode="keyword")).hits
    assert hits[0].id == "psa-resits#is-there-extra-support"
    assert not any(
        h.slug == "study-groups"
        for h in Searcher(index, fake_embedder).search(SearchRequest("question banks", mode="keyword")).hits
    )


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

    (content_copy / "psa" / "psa-resits.md").write_text(
        (content_copy / "psa" / "psa-resits.md").read_text() + "\nMore.\n"
    )
    with pytest.raises(OSError):
        build_index(content_copy, index, fake_embedder, before_swap=boom)
    assert current_path(index) == live
    assert not list(index.glob(".tmp-*"))
    assert Searcher(index, fake_embedder).search(SearchRequest("resit", mode="keyword")).hits


def test_old_generations_are_cleaned_up(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    for _ in range(4):
        build_index(content_copy, index, fake_embedder, force=True, keep=2, grace=0)
    assert len(list(index.glob("gen-*"))) == 2


def test_index_status_reports_changes(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    assert not index_status(content_copy, index).built
    build_index(content_copy, index, fake_embedder)
    assert not index_status(content_copy, index).stale
    (content_copy / "psa" / "psa-resits.md").write_text(
        (content_copy / "psa" / "psa-resits.md").read_text() + "\nMore.\n"
    )
    st = index_status(content_copy, index)
    assert st.stale and st.changed == ["psa-resits"]


def test_searcher_errors_for_missing_and_mismatched_index(content_copy, tmp_path, fake_embedder, real_embedder):
    with pytest.raises(IndexNotBuiltError) as info:
        Searcher(tmp_path / "none", fake_embedder).search(SearchRequest("psa"))
    assert "scripts/build_index.py" in info.value.message
    index = tmp_path / "index"
    build_index(content_copy, index, fake_embedder)

    class Other:
        name = "another/model"

    with pytest.raises(IndexMismatchError) as info:
        Searcher(index, Other()).search(SearchRequest("psa"))
    assert "--full" in info.value.message and "another/model" in info.value.message


# ---- embedding cache, incremental work, interrupted builds ------------------------------------------
def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_no_change_rebuild_does_not_touch_the_encoder(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    build_index(content_copy, index, fake_embedder)
    calls = fake_embedder.calls
    again = build_index(content_copy, index, fake_embedder)
    assert again.skipped and fake_embedder.calls == calls
    forced = build_index(content_copy, index, fake_embedder, force=True)
    assert (
        not forced.skipped and forced.embedded == 0 and forced.reused == forced.chunks and fake_embedder.calls == calls
    )
    assert "embedded nothing" in forced.summary()


def test_editing_one_section_embeds_only_that_chunk_and_says_which_guide(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    first = build_index(content_copy, index, fake_embedder)
    edit(content_copy / "psa" / "psa-resits.md", "two resits in the first half", "two resit sittings in the first half")
    report = build_index(content_copy, index, fake_embedder)
    assert report.changed == ["psa-resits"] and report.embedded == 1 and report.reused == first.chunks - 1
    resit_chunks = sum(
        1 for line in (current_path(index) / "chunks.jsonl").read_text().splitlines() if '"slug": "psa-resits"' in line
    )
    assert report.embedded_by_guide == {"psa-resits": [1, resit_chunks]}
    lines = report.summary().splitlines()
    assert (
        lines[0].startswith("Built gen-")
        and "(0 added, 1 changed, 0 removed)" in lines[0]
        and "(1 embedded," in lines[0]
    )
    assert "  changed: psa-resits" in lines
    assert any(f"psa-resits 1 of {resit_chunks} chunks" in line for line in lines)


def test_full_rebuild_reembeds_everything(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    first = build_index(content_copy, index, fake_embedder)
    before = fake_embedder.encoded
    full = build_index(content_copy, index, fake_embedder, full=True)
    assert full.embedded == first.chunks and full.reused == 0 and fake_embedder.encoded - before == first.chunks
    assert "everything (--full)" in full.summary()


def test_cache_outlives_the_generations(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    first = build_index(content_copy, index, fake_embedder)
    for gen in index.glob("gen-*"):
        shutil.rmtree(gen)
    (index / "current").unlink()
    again = build_index(content_copy, index, fake_embedder)
    assert again.embedded == 0 and again.reused_from_cache == first.chunks and current_path(index) is not None


def test_reverting_an_edit_is_free(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    build_index(content_copy, index, fake_embedder)
    path = content_copy / "psa" / "psa-resits.md"
    original = path.read_text()
    edit(path, "two resits", "two resit sittings")
    assert build_index(content_copy, index, fake_embedder).embedded == 1
    path.write_text(original)
    assert build_index(content_copy, index, fake_embedder).embedded == 0


def test_only_changed_guides_are_rendered_again(content_copy, tmp_path, fake_embedder, monkeypatch):
    import kb.index.build

    index = tmp_path / "index"
    build_index(content_copy, index, fake_embedder)
    rendered = []
    real = kb.index.build.render_markdown
    monkeypatch.setattr(
        kb.index.build, "render_markdown", lambda body, *a, **k: rendered.append(body[:30]) or real(body, *a, **k)
    )
    edit(content_copy / "psa" / "psa-resits.md", "two resits", "two resit sittings")
    build_index(content_copy, index, fake_embedder)
    assert len(rendered) == 1
    # a change to the chunking code (another fingerprint) re-chunks every guide
    monkeypatch.setattr(kb.index.build, "CHUNKER_FINGERPRINT", "something-else")
    rendered.clear()
    build_index(content_copy, index, fake_embedder, force=True)
    assert len(rendered) == 5


def test_interrupt_after_embedding_keeps_previous_index_and_the_work(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    build_index(content_copy, index, fake_embedder)
    live = current_path(index)
    edit(content_copy / "psa" / "psa-resits.md", "two resits", "two resit sittings")

    def ctrl_c(report):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index(content_copy, index, fake_embedder, after_embed=ctrl_c)
    assert current_path(index) == live and not list(index.glob(".tmp-*"))
    assert Searcher(index, fake_embedder).search(SearchRequest("resit", mode="keyword")).generation == live.name
    retry = build_index(content_copy, index, fake_embedder)
    assert retry.changed == ["psa-resits"] and retry.embedded == 0  # the interrupted build's vectors were cached


def test_disk_full_while_writing_keeps_previous_index(content_copy, tmp_path, fake_embedder, monkeypatch):
    import kb.index.generation

    index = tmp_path / "index"
    build_index(content_copy, index, fake_embedder)
    live = current_path(index)
    seen = []

    def full_disk(path, vectors):
        seen.append(path.parent.name)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(kb.index.generation.vector_index, "build", full_disk)
    with pytest.raises(OSError):
        build_index(content_copy, index, fake_embedder, force=True)
    assert seen and seen[0].startswith(".tmp-")  # it failed midway through writing the new generation
    assert current_path(index) == live and not list(index.glob(".tmp-*"))
    assert Searcher(index, fake_embedder).search(SearchRequest("resit", mode="keyword")).hits


def test_leftovers_of_a_killed_build_are_removed_by_the_next(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    build_index(content_copy, index, fake_embedder)
    (index / ".tmp-20260101T000000000000Z").mkdir()
    (index / ".tmp-20260101T000000000000Z" / "chunks.jsonl").write_text("{")
    os.symlink("gen-nowhere", index / ".tmp-link-20260101T000000000000Z")
    (index / "cache" / ".tmp-123-embeddings.npz").write_bytes(b"partial")
    report = build_index(content_copy, index, fake_embedder, force=True)
    assert report.debris_removed == 3 and "leftover" in report.summary()
    assert not list(index.glob(".tmp-*")) and not list((index / "cache").glob(".tmp-*"))


def test_retired_generation_is_kept_for_a_grace_period(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    for _ in range(3):
        build_index(content_copy, index, fake_embedder, force=True, keep=2, grace=60)
    # the oldest was retired seconds ago: a server may still be finishing a request on it
    assert len(list(index.glob("gen-*"))) == 3
    report = build_index(content_copy, index, fake_embedder, force=True, keep=2, grace=0)
    assert len(list(index.glob("gen-*"))) == 2 and len(report.generations_removed) == 2


def test_index_of_an_older_format_is_rebuilt_reusing_its_vectors(content_copy, tmp_path, fake_embedder):
    from kb.index.generation import FORMAT_VERSION

    index = tmp_path / "index"
    first = build_index(content_copy, index, fake_embedder)
    path = current_path(index) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["format_version"] = FORMAT_VERSION - 1
    path.write_text(json.dumps(manifest))
    status = index_status(content_copy, index, fake_embedder.name)
    assert not status.built and f"reads {FORMAT_VERSION}" in status.reason  # so `--if-stale` builds
    with pytest.raises(IndexMismatchError, match="the index format is"):
        Searcher(index, fake_embedder).search(SearchRequest("resit", mode="keyword"))
    second = build_index(content_copy, index, fake_embedder)  # same content, yet not skipped
    assert not second.skipped and second.embedded == 0 and second.reused == first.chunks
    assert second.keyword_mode == "rewrite"  # the keyword index is written anew, never patched
    assert json.loads((current_path(index) / "manifest.json").read_text())["format_version"] == FORMAT_VERSION
    assert Searcher(index, fake_embedder).search(SearchRequest("resit", mode="keyword")).hits


def test_spelling_vocabulary_is_counted_by_the_build_not_by_each_server(
    content_copy, tmp_path, fake_embedder, monkeypatch
):
    import kb.engines.spelling
    from kb.engines.spelling import Vocabulary, section_text
    from kb.index.generation import VOCABULARY_FILE

    index = tmp_path / "index"
    build_index(content_copy, index, fake_embedder)
    gen = current_path(index)
    manifest = json.loads((gen / "manifest.json").read_text())
    assert VOCABULARY_FILE in manifest["files"]  # checksummed like every other file
    searcher = Searcher(index, fake_embedder)
    chunks = searcher.generation().chunks
    counted = Vocabulary(section_text(c.title, c.heading_path, c.text) for c in chunks)

    class NoCounting:  # any counting of section words goes through kb.engines.spelling's word pattern
        def findall(self, text):
            raise AssertionError("the server counted the words itself")

    monkeypatch.setattr(kb.engines.spelling, "WORD_RE", NoCounting())
    searcher = Searcher(index, fake_embedder)
    stored = searcher.generation().vocabulary
    assert stored.counts == counted.counts and stored.lowercase_words == counted.lowercase_words
    res = searcher.search(SearchRequest("resitts", mode="keyword"))
    assert res.did_you_mean == "resits" and res.hits


def test_glossary_short_forms_are_found_by_the_build(content_copy, tmp_path, fake_embedder, monkeypatch):
    import kb.content.glossary
    from kb.content.glossary import Glossary, short_forms
    from kb.engines.keyword_index import analyse
    from kb.engines.spelling import section_text
    from kb.index.generation import SHORT_FORMS_FILE

    index = tmp_path / "index"
    build_index(content_copy, index, fake_embedder)
    gen = current_path(index)
    assert SHORT_FORMS_FILE in json.loads((gen / "manifest.json").read_text())["files"]
    chunks = Searcher(index, fake_embedder).generation().chunks
    found = short_forms(
        Glossary.load(content_copy).terms,
        (section_text(c.title, c.heading_path, c.text) for c in chunks),
        lambda w: bool(analyse(w)),
    )
    assert found[("prescribing", "safety")].term == "PSA"  # the fixture guides write the name out in full twice

    class NoScanning:  # finding short forms splits every section with kb.content.glossary's word pattern
        def findall(self, text):
            raise AssertionError("the server read every section to find short forms")

    monkeypatch.setattr(kb.content.glossary, "WORD_RE", NoScanning())
    loaded = Searcher(index, fake_embedder).generation()
    assert {k: t.term for k, (t, kind) in loaded._forms.items() if kind == "short"} == {
        k: t.term
        for k, t in found.items()
        if k not in {k2 for k2, (_, kind) in loaded._forms.items() if kind != "short"}
    }


def test_a_build_killed_between_rename_and_swap_does_not_displace_the_previous_generation(
    content_copy, tmp_path, fake_embedder, monkeypatch
):
    """The new generation is in place but `current` never moved to it: it is debris, not "the previous generation"."""
    from kb.tools.verify import verify_index

    index = tmp_path / "index"
    first = build_index(content_copy, index, fake_embedder, grace=0).generation
    second = build_index(content_copy, index, fake_embedder, force=True, grace=0).generation

    class Killed(BaseException):
        pass

    def kill(*args, **kwargs):
        raise Killed  # SIGKILL at the symlink call, as `strace -e inject=symlink:signal=KILL` does

    monkeypatch.setattr(os, "symlink", kill)
    with pytest.raises(Killed):
        build_index(content_copy, index, fake_embedder, force=True, grace=0)
    monkeypatch.undo()
    (orphan,) = {p.name for p in index.glob("gen-*")} - {first, second}
    assert current_path(index).name == second

    v = verify_index(index, content_copy, fake_embedder.name)
    assert orphan in next(c.detail for c in v.checks if c.name == "leftovers")
    report = build_index(content_copy, index, fake_embedder, force=True, keep=2, grace=0)
    assert report.debris_removed == 1 and orphan not in report.generations_removed
    assert {p.name for p in index.glob("gen-*")} == {report.generation, second}  # the real previous generation is kept


def test_a_rolled_back_current_keeps_the_newer_generation(content_copy, tmp_path, fake_embedder):
    """Pointing `current` back at an older generation by hand is not a killed build: nothing is taken for debris."""
    from kb.index.generation import debris

    index = tmp_path / "index"
    first = build_index(content_copy, index, fake_embedder, grace=0).generation
    second = build_index(content_copy, index, fake_embedder, force=True, grace=0).generation
    (index / "current").unlink()
    os.symlink(first, index / "current")
    assert not debris(index) and (index / second).is_dir()
