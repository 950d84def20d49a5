"""Faults: a missing, partial, corrupted or mismatched index, bad content under a live server, recovery.

Everything here runs against one app instance that is never restarted: damage is done to the files
while it serves, and a rebuild must bring search back by itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest

from app import create_app
from kb.errors import ContentError
from kb.index.build import build_index
from kb.index.generation import current_path
from tests.conftest import FIXTURE_CONTENT
from tests.fakes import HashEmbedder

BUILD_HINT = "python scripts/build_index.py"


@pytest.fixture
def site(tmp_path):
    """A content copy, an index built from it with the fake encoder, and an app serving both."""
    content = tmp_path / "content"
    shutil.copytree(FIXTURE_CONTENT, content)
    index = tmp_path / "index"
    embedder = HashEmbedder()
    build_index(content, index, embedder)
    app = create_app(
        {"TESTING": True, "KB_CONTENT_DIR": str(content), "KB_INDEX_DIR": str(index), "KB_RELOAD_INTERVAL": 0},
        embedder=embedder,
    )
    return app, content, index, embedder


def live(index: Path) -> Path:
    gen = current_path(index)
    assert gen is not None
    return gen


def search_ok(client, q="psa resit") -> dict:
    r = client.get("/api/search", query_string={"q": q})
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def assert_instructive_503(client, needle: str = BUILD_HINT) -> str:
    r = client.get("/api/search", query_string={"q": "psa resit"})
    d = r.get_json()
    assert r.status_code == 503, (r.status_code, d)
    assert d["ok"] is False and d["status"] == 503 and needle in d["error"], d
    page = client.get("/search?q=psa+resit")
    html = page.get_data(as_text=True)
    assert page.status_code == 503 and "Search is not ready" in html and "Traceback" not in html
    assert 'id="error-search"' not in html  # no search box while search cannot answer
    assert client.get("/healthz").status_code == 503
    assert client.get("/guides/psa-resits").status_code == 200  # reading guides never depends on the index
    assert client.get("/").status_code == 200
    return d["error"]


def _first_segment(gen: Path) -> Path:
    return next(p for p in (gen / "whoosh").iterdir() if p.suffix == ".seg")


def _toc(gen: Path) -> Path:
    return next(p for p in (gen / "whoosh").iterdir() if p.suffix == ".toc")


DELETIONS = {
    "vectors.faiss": lambda g: g / "vectors.faiss",
    "chunks.jsonl": lambda g: g / "chunks.jsonl",
    "glossary.json": lambda g: g / "glossary.json",
    "vectors.npy": lambda g: g / "vectors.npy",
    "whoosh segment": _first_segment,
    "whoosh toc": _toc,
    "manifest.json": lambda g: g / "manifest.json",
}


@pytest.mark.parametrize("victim", list(DELETIONS))
def test_deleting_a_live_index_file_gives_instructive_503_then_rebuild_recovers(site, victim, caplog):
    app, content, index, embedder = site
    client = app.test_client()
    before = search_ok(client)["generation"]  # loaded and serving (the FAISS file is mmap'ed)

    path = DELETIONS[victim](live(index))
    path.unlink()
    with caplog.at_level(logging.ERROR):
        message = assert_instructive_503(client)
    assert any(r.levelno >= logging.ERROR and "gen-" in r.getMessage() for r in caplog.records), (
        "no log line for the damaged index"
    )
    assert path.name in message  # says which file

    report = build_index(content, index, embedder)  # the ordinary command, no --full, no restart
    assert not report.skipped and report.generation != before
    after = search_ok(client)
    assert after["generation"] == report.generation and after["hits"][0]["slug"] == "psa-resits"
    assert client.get("/healthz").get_json()["generation"] == report.generation


CORRUPTIONS = {
    "faiss truncated": lambda g: _truncate(g / "vectors.faiss"),
    "faiss bytes flipped": lambda g: _flip(g / "vectors.faiss", -16),
    "chunks garbage": lambda g: (g / "chunks.jsonl").write_text("{not json\n"),
    "chunks line dropped": lambda g: (g / "chunks.jsonl").write_text(
        "".join((g / "chunks.jsonl").read_text().splitlines(True)[1:])
    ),
    "whoosh segment truncated": lambda g: _truncate(_first_segment(g)),
    "glossary garbage": lambda g: (g / "glossary.json").write_bytes(b"\xff\xfe"),
}


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", list(CORRUPTIONS))
def test_corrupted_index_file_is_refused_before_any_parser_reads_it(site, damage):
    app, content, index, embedder = site
    client = app.test_client()
    search_ok(client)
    CORRUPTIONS[damage](live(index))
    message = assert_instructive_503(client)
    assert "corrupted" in message or "missing" in message
    build_index(content, index, embedder)
    search_ok(client)


def test_fresh_process_on_damaged_index_is_503_not_500(site):
    """A new worker (gunicorn replaces workers) meets the damage at load, not mid-search."""
    app, content, index, embedder = site
    _first_segment(live(index)).unlink()
    fresh = create_app({"TESTING": True, "KB_CONTENT_DIR": str(content), "KB_INDEX_DIR": str(index)}, embedder=embedder)
    assert "is missing whoosh/" in assert_instructive_503(fresh.test_client())


def test_file_lost_after_load_surfaces_mid_search_as_503(site, caplog):
    """Whoosh opens segment files lazily: a segment removed after loading fails inside the search."""
    app, content, index, embedder = site
    app.extensions["kb"].searcher.reload_interval = 3600  # no stat re-check: the search itself meets the loss
    app.extensions["kb"].searcher.generation()
    _first_segment(live(index)).unlink()
    client = app.test_client()
    with caplog.at_level(logging.ERROR):
        r = client.get("/api/search?q=psa")
    assert r.status_code == 503 and "damaged (FileNotFoundError)" in r.get_json()["error"]
    assert any("failed during a search" in rec.getMessage() for rec in caplog.records)


def test_a_bug_is_not_disguised_as_a_damaged_index(site, monkeypatch):
    """Only I/O errors, or errors while files are altered, become 503; a real bug stays a logged 500."""
    app, *_ = site
    client = app.test_client()
    gen = app.extensions["kb"].searcher.generation()

    def boom(*a, **k):
        raise ValueError("a bug")

    monkeypatch.setattr(gen.keyword, "search", boom)
    r = client.get("/api/search?q=psa&mode=keyword")
    assert (
        r.status_code == 500 and "Traceback" not in r.get_data(as_text=True) and "a bug" not in r.get_data(as_text=True)
    )

    def io(*a, **k):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(gen.keyword, "search", io)
    r = client.get("/api/search?q=psa&mode=keyword")
    assert r.status_code == 503 and BUILD_HINT in r.get_json()["error"]
    search_ok(client)  # dropped and reloaded from the (intact) files


def test_restoring_the_same_generation_also_recovers(site):
    app, content, index, embedder = site
    client = app.test_client()
    search_ok(client)
    faiss = live(index) / "vectors.faiss"
    kept = faiss.read_bytes()
    faiss.unlink()
    assert_instructive_503(client)
    faiss.write_bytes(kept)
    search_ok(client)


def test_missing_index_then_first_build_needs_no_restart(tmp_path):
    embedder = HashEmbedder()
    index = tmp_path / "index"
    app = create_app(
        {"KB_CONTENT_DIR": str(FIXTURE_CONTENT), "KB_INDEX_DIR": str(index), "KB_RELOAD_INTERVAL": 0}, embedder=embedder
    )
    client = app.test_client()
    assert "no search index has been built" in assert_instructive_503(client)
    build_index(FIXTURE_CONTENT, index, embedder)
    search_ok(client)


@pytest.mark.parametrize(
    "breakage, needle",
    [
        ("no manifest", BUILD_HINT),
        ("manifest not json", BUILD_HINT),
        ("dangling current", "no search index has been built"),
        ("current is a file", "no search index has been built"),
        ("empty generation", BUILD_HINT),
    ],
)
def test_partial_index_is_instructive_503(site, breakage, needle):
    app, content, index, embedder = site
    client = app.test_client()
    gen = live(index)
    if breakage == "no manifest":
        (gen / "manifest.json").unlink()
    elif breakage == "manifest not json":
        (gen / "manifest.json").write_text('{"format_version": 1, "gener')
    elif breakage == "dangling current":
        shutil.rmtree(gen)
    elif breakage == "current is a file":
        (index / "current").unlink()
        (index / "current").write_text("gen-x")
    elif breakage == "empty generation":
        (index / "gen-empty").mkdir()
        (index / "current").unlink()
        os.symlink("gen-empty", index / "current")
    assert_instructive_503(client, needle)


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda m: m.update(model="someone/other-model"), "--full"),
        (lambda m: m.update(format_version=99), "format"),
        (lambda m: m.update(dimension=384), "dimension"),
        (lambda m: m["counts"].update(chunks=m["counts"]["chunks"] + 1), "inconsistent"),
    ],
    ids=["model", "format", "dimension", "counts"],
)
def test_mismatched_index_is_instructive_503(site, edit, needle):
    app, content, index, embedder = site
    client = app.test_client()
    path = live(index) / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    message = assert_instructive_503(client)
    # an index of another format keeps good vectors: a plain build reuses them; the rest need --full
    assert needle in message and f"{BUILD_HINT}{'' if needle == 'format' else ' --full'}`" in message
    build_index(content, index, embedder)  # a plain rebuild does not trust the damaged manifest for reuse
    search_ok(client)


def test_index_built_with_another_model_names_both_and_the_fix(site):
    app, content, index, _ = site

    class Other(HashEmbedder):
        name = "test/other-model"

    other = create_app(
        {"KB_CONTENT_DIR": str(content), "KB_INDEX_DIR": str(index), "KB_RELOAD_INTERVAL": 0}, embedder=Other()
    )
    message = assert_instructive_503(other.test_client())
    assert "test/hash-embedder" in message and "test/other-model" in message and f"{BUILD_HINT} --full" in message


def test_broken_generation_is_rechecked_at_most_once_per_interval(site, caplog):
    app, content, index, embedder = site
    searcher = app.extensions["kb"].searcher
    searcher.reload_interval = 3600
    searcher.invalidate()
    (live(index) / "vectors.faiss").unlink()
    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger="kb.search.pipeline"):
        for _ in range(5):
            assert client.get("/api/search?q=psa").status_code == 503
    loads = [
        r for r in caplog.records if r.name == "kb.search.pipeline" and "cannot load index generation" in r.getMessage()
    ]
    assert len(loads) == 1
    build_index(content, index, embedder)  # a new generation is picked up at once, interval or not
    search_ok(client)


def test_index_status_reports_damage_so_make_run_rebuilds(site):
    from kb.index.generation import index_status

    _, content, index, _ = site
    assert index_status(content, index).built
    (live(index) / "vectors.faiss").unlink()
    st = index_status(content, index)
    assert not st.built and "missing vectors.faiss" in st.reason


# ---- bad content under a live server ------------------------------------------------------------

GOOD = (FIXTURE_CONTENT / "psa" / "psa-resits.md").read_text(encoding="utf-8")


def _bad_files(content: Path, outside: Path) -> dict[str, str]:
    """Write one file per kind of bad input; return {slug: expected problem text}."""
    psa = content / "psa"
    (psa / "bad-yaml.md").write_text('---\ntitle: "unclosed\ntags: [psa\n---\n\nBody.\n', encoding="utf-8")
    (psa / "latin-one.md").write_bytes(
        GOOD.replace("What happens", "Caf\u00e9 what happens").encode("latin-1", "replace")
    )
    (psa / "utf-sixteen.md").write_bytes(GOOD.replace("What happens", "Other").encode("utf-16"))
    (psa / "empty.md").write_bytes(b"")
    (psa / "only-spaces.md").write_text("   \n\n", encoding="utf-8")
    (psa / "huge.md").write_text(
        GOOD.replace("What happens", "Huge") + ("lorem ipsum " * 440_000), encoding="utf-8"
    )  # ~5 MB
    (psa / "nul-bytes.md").write_bytes(GOOD.replace("What happens", "Nul").encode() + b"\x00\x00")
    (psa / "front-matter-list.md").write_text("---\n- a\n- b\n---\n\nBody.\n", encoding="utf-8")
    (psa / "no-front-matter.md").write_text("# Just a heading\n\nText.\n", encoding="utf-8")
    outside.write_text(GOOD.replace("What happens", "Leaked"), encoding="utf-8")
    (psa / "symlink-out.md").symlink_to(outside)
    (psa / "symlink-loop.md").symlink_to("symlink-loop.md")
    (psa / "a-folder.md").mkdir()
    return {
        "bad-yaml": "not valid YAML",
        "latin-one": "not valid UTF-8",
        "utf-sixteen": "not valid UTF-8",
        "empty": "file is empty",
        "only-spaces": "file is empty",
        "huge": "the limit is",
        "nul-bytes": "NUL bytes",
        "front-matter-list": "missing required field",
        "no-front-matter": "no front matter",
        "symlink-out": "outside the content folder",
        "symlink-loop": "cannot read file",
        "a-folder": "cannot read file",
    }


def test_bad_guides_added_while_serving_never_break_the_site(site, tmp_path):
    app, content, index, embedder = site
    client = app.test_client()
    search_ok(client)
    expected = _bad_files(content, tmp_path / "outside.md")
    (content / "psa" / "bom-guide.md").write_bytes(
        b"\xef\xbb\xbf" + GOOD.replace("What happens", "Bommed: what happens").encode()
    )
    app.extensions["kb"].library.check_interval = 0

    for url in [
        "/",
        "/guides",
        "/categories/psa",
        "/tags",
        "/tags/psa",
        "/api/guides",
        "/search?q=resit",
        "/api/search?q=resit",
        "/healthz",
    ]:
        r = client.get(url)
        assert r.status_code == 200, (url, r.status_code)
    for slug in expected:  # hidden, and the page says it is being fixed rather than that it never existed
        page = client.get(f"/guides/{slug}")
        assert page.status_code == 503 and "Leaked" not in page.get_data(as_text=True), slug
    assert client.get("/guides/psa-resits").status_code == 200
    assert "Bommed: what happens" in client.get("/guides/bom-guide").get_data(as_text=True)
    assert "Leaked" not in client.get("/api/guides").get_data(as_text=True)

    # the build refuses the same folder with every problem listed, and the live index is untouched
    live_before = live(index).name
    with pytest.raises(ContentError) as info:
        build_index(content, index, embedder)
    text = "\n".join(p.format() for p in info.value.problems)
    for slug, problem in expected.items():
        assert any(f"{slug}.md" in p.path and problem in p.message for p in info.value.problems), (slug, problem, text)
    assert live(index).name == live_before
    search_ok(client)


@pytest.mark.parametrize(
    "name, text",
    [
        ("taxonomy.yml", "categories: [unclosed"),
        ("taxonomy.yml", "categories: 5\ntags: 7\n"),
        ("taxonomy.yml", "- just\n- a list\n"),
        ("taxonomy.yml", "categories:\n  psa: just a string\ntags: {a: 1}\n"),
        ("taxonomy.yml", b"\xff\xfe\xfd"),
        ("taxonomy.yml", None),
        ("glossary.yml", "- term: PSA\n  expansion: x\n  meaning: y\n  aliases: 5\n"),
        ("glossary.yml", "- term: PSA\n  expansion: x\n  meaning: y\n  synonyms: {a: b}\n"),
        ("glossary.yml", "{not: a list}"),
        ("glossary.yml", "- [unclosed"),
        ("glossary.yml", b"\xff\xfe\xfd"),
        ("glossary.yml", None),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_broken_taxonomy_or_glossary_is_a_content_error_not_a_crash(site, name, text, caplog):
    app, content, index, embedder = site
    client = app.test_client()
    app.extensions["kb"].library.check_interval = 0
    path = content / name
    path.unlink()
    if text is None:
        path.mkdir()  # a folder where the file should be
    elif isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    for url in [
        "/",
        "/guides",
        "/guides/psa-resits",
        "/categories/psa",
        "/tags",
        "/api/guides",
        "/search?q=resit",
        "/api/search?q=resit",
    ]:
        r = client.get(url)
        assert r.status_code < 500, (url, r.status_code, r.get_data(as_text=True)[:300])
    with pytest.raises(ContentError) as info:
        build_index(content, index, embedder, force=True)
    assert any(name in p.path for p in info.value.problems), [p.format() for p in info.value.problems]


# ---- the same, end to end, on the production server -----------------------------------------------


def _get(url: str) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _until(predicate, timeout: float = 60.0, streak: int = 6):
    """Poll until `predicate()` holds `streak` times in a row (so every worker has been seen)."""
    import time

    deadline, seen, last = time.monotonic() + timeout, 0, None
    while time.monotonic() < deadline:
        ok, last = predicate()
        seen = seen + 1 if ok else 0
        if seen >= streak:
            return last
        time.sleep(0.2)
    raise AssertionError(f"condition not reached; last answer: {last}")


@pytest.mark.slow
def test_gunicorn_answers_503_for_a_deleted_index_file_and_recovers_after_a_rebuild(tmp_path, real_embedder):
    from benchmarks.serving import gunicorn

    content = tmp_path / "content"
    shutil.copytree(FIXTURE_CONTENT, content)
    index = tmp_path / "index"
    first = build_index(content, index, real_embedder)
    log = tmp_path / "gunicorn.log"
    with gunicorn(content, index, workers=2, log=log) as (base, proc):
        search = base + "/api/search?q=can+I+resit+the+psa"

        def answered(status):
            def check():
                code, body = _get(search)
                return code == status, (code, body)

            return check

        code, body = _until(answered(200))
        assert body["generation"] == first.generation and body["hits"][0]["slug"] == "psa-resits"

        (live(index) / "vectors.faiss").unlink()
        code, body = _until(answered(503))  # both workers, within the 1 s reload check
        assert body == {"ok": False, "status": 503, "error": body["error"]}
        assert "missing vectors.faiss" in body["error"] and f"{BUILD_HINT} --full" in body["error"]
        assert _get(base + "/healthz")[0] == 503

        rebuilt = build_index(content, index, real_embedder)  # no restart, no signal to the server
        code, body = _until(answered(200))
        assert body["generation"] == rebuilt.generation != first.generation
        assert proc.poll() is None
    text = log.read_text()
    assert text.count("Booting worker") == 2, "a worker was restarted"
    assert "missing vectors.faiss" in text and "ERROR" in text  # the log says what broke
    assert "Traceback" not in text


# ---- the analytics database: locked or read-only never fails a search ----------------------------


def _analytics_app(site, url: str):
    _, content, index, embedder = site
    app = create_app(
        {
            "TESTING": True,
            "KB_CONTENT_DIR": str(content),
            "KB_INDEX_DIR": str(index),
            "KB_RELOAD_INTERVAL": 0,
            "KB_DATABASE_URL": url,
        },
        embedder=embedder,
    )
    return app, app.extensions["kb_analytics"]


def _recorded(db: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return [q for (q,) in conn.execute("SELECT query FROM searches ORDER BY id")]


def test_locked_analytics_database_never_fails_a_search_and_recording_resumes(site, tmp_path, caplog):
    import sqlite3

    db = tmp_path / "analytics.sqlite3"
    app, analytics = _analytics_app(site, f"sqlite:///{db}")
    client = app.test_client()
    assert client.get("/search?q=before+the+lock").status_code == 200
    assert analytics.recorder.flush(10) and _recorded(db) == ["before the lock"]

    holder = sqlite3.connect(db, isolation_level=None, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")  # another process (a report, a backup) holds the write lock
    try:
        with caplog.at_level(logging.WARNING, logger="kb.store"):
            for q in ("resit", "ward round", "allocation"):
                assert client.get("/search", query_string={"q": f"locked {q}"}).status_code == 200
                assert client.get("/api/search", query_string={"q": f"locked {q}"}).get_json()["ok"] is True
                assert client.get("/guides/psa-resits").status_code == 200
            assert analytics.recorder.flush(30)  # the writer waited out its busy timeout, gave up, logged
        assert analytics.recorder.failed >= 1 and "could not record" in caplog.text and "locked" in caplog.text
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert client.get("/search?q=after+the+lock").status_code == 200
    assert analytics.recorder.flush(10)
    assert _recorded(db)[-1] == "after the lock"  # recording resumed by itself


def test_read_only_analytics_database_never_fails_a_search(site, tmp_path, caplog, monkeypatch):
    db = tmp_path / "analytics.sqlite3"
    writable, _ = _analytics_app(site, f"sqlite:///{db}")
    writable.test_client().get("/search?q=written+earlier")
    writable.test_client().get("/guides/psa-resits")  # the feedback forms' signing key is now in the database
    assert writable.extensions["kb_analytics"].recorder.flush(10)
    # opened read-only, as it would be on a read-only mount or owned by another user (the tests run as root)
    monkeypatch.chdir(tmp_path)
    app, analytics = _analytics_app(site, f"sqlite:///file:{db}?mode=ro&uri=true")
    client = app.test_client()
    with caplog.at_level(logging.WARNING):
        for q in ("resit", "ward round"):
            assert client.get("/search", query_string={"q": q}).status_code == 200
            assert client.get("/api/search", query_string={"q": q}).status_code == 200
        page = client.get("/guides/psa-resits")
        assert page.status_code == 200
        token = re.search(r'name="token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
        r = client.post(
            "/guides/psa-resits/feedback",
            data={"token": token, "helpful": "yes"},
            headers={"Accept": "application/json"},
        )
        assert r.status_code == 503 and "could not be saved" in r.get_json()["error"]  # said plainly, not a 500
        assert analytics.recorder.flush(30)
    assert analytics.recorder.failed >= 2 and "readonly database" in caplog.text
    assert _recorded(db) == ["written earlier"]
    assert not any(p.name.startswith("file:") for p in tmp_path.iterdir()), "a stray 'file:' folder was created"


def test_analytics_loss_is_logged_as_a_total_and_shown_by_healthz(site, tmp_path, caplog):
    """During an outage the log is rate-limited, so each line and the recovery line carry the running total."""
    from sqlalchemy.exc import OperationalError

    app, analytics = _analytics_app(site, f"sqlite:///{tmp_path / 'analytics.sqlite3'}")
    client = app.test_client()
    write = analytics.store.write

    def down(events):
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    analytics.store.write = down
    with caplog.at_level(logging.WARNING, logger="kb.store"):
        for i in range(5):
            assert client.get("/api/search", query_string={"q": f"outage {i}"}).status_code == 200
            assert analytics.recorder.flush(10)
        assert client.get("/healthz").get_json()["analytics_events_lost"] == 5
        analytics.store.write = write
        assert client.get("/api/search?q=after+the+outage").status_code == 200
        assert analytics.recorder.flush(10)
    assert "5 analytics event(s) were lost" in caplog.text, caplog.text
    assert client.get("/healthz").get_json()["analytics_events_lost"] == 5
    assert _recorded(tmp_path / "analytics.sqlite3") == ["after the outage"]


def test_an_unreachable_analytics_database_costs_one_connect_timeout_not_two(tmp_path, monkeypatch):
    """Creating the tables is retried only for the race with another process creating them, not for a failed
    connection."""
    from sqlalchemy.exc import OperationalError

    import kb.store
    from kb.errors import StoreError

    calls, real = [], kb.store.metadata.create_all

    def create_all(*args, **kwargs):
        calls.append(1)
        raise OperationalError("CREATE TABLE", {}, Exception("connection timeout expired"))

    monkeypatch.setattr(kb.store.metadata, "create_all", create_all)
    store = kb.store.Store(f"sqlite:///{tmp_path / 'a.sqlite3'}", 180)
    with pytest.raises(StoreError) as info:
        store.ensure_schema()
    assert isinstance(info.value.__cause__, OperationalError) and "connection timeout expired" in info.value.message
    assert len(calls) == 1

    def raced(*args, **kwargs):  # another worker created the table between the check and the create
        calls.append(1)
        if len(calls) == 2:
            raise OperationalError("CREATE TABLE searches", {}, Exception("table searches already exists"))
        real(*args, **kwargs)

    monkeypatch.setattr(kb.store.metadata, "create_all", raced)
    store.ensure_schema()
    assert len(calls) == 3
