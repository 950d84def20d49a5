"""Live preview: an edited guide renders on the next request; the page says when search is behind."""

from __future__ import annotations

import shutil

import pytest

from app import create_app
from kb.index.build import build_index
from tests.conftest import FIXTURE_CONTENT
from tests.fakes import HashEmbedder

NEW_SECTION = "\n## Is there a zanzibarish rule for the PSA?\n\nYes: a made-up rule that only this test writes.\n"


@pytest.fixture
def preview(tmp_path):
    content = tmp_path / "content"
    shutil.copytree(FIXTURE_CONTENT, content)
    index = tmp_path / "index"
    embedder = HashEmbedder()
    build_index(content, index, embedder)
    app = create_app(
        {"TESTING": True, "KB_CONTENT_DIR": str(content), "KB_INDEX_DIR": str(index), "KB_RELOAD_INTERVAL": 0},
        embedder=embedder,
    )
    app.extensions["kb"].library.check_interval = 0  # re-read the files on every request
    return app, content, index, embedder


def test_edit_renders_at_once_and_notice_shows_until_rebuild(preview):
    app, content, index, embedder = preview
    client = app.test_client()
    page = client.get("/guides/psa-exam-format").get_data(as_text=True)
    assert "search-behind" not in page and "zanzibarish" not in page

    with open(content / "psa" / "psa-exam-format.md", "a", encoding="utf-8") as fh:
        fh.write(NEW_SECTION)
    page = client.get("/guides/psa-exam-format").get_data(as_text=True)
    assert 'id="is-there-a-zanzibarish-rule-for-the-psa"' in page  # rendered at once
    assert 'class="banner warning search-behind"' in page and "Search has not caught up" in page
    assert "make build" not in page  # the command is for writers in development mode only
    assert client.get("/api/guides/psa-exam-format").get_json()["guide"]["search_behind"] is True
    assert client.get("/api/search?q=zanzibarish&mode=keyword").get_json()["hits"] == []

    app.config["DEBUG"] = True
    assert "make build" in client.get("/guides/psa-exam-format").get_data(as_text=True)
    app.config["DEBUG"] = False

    report = build_index(content, index, embedder)
    assert report.changed == ["psa-exam-format"] and report.embedded < report.chunks  # incremental
    page = client.get("/guides/psa-exam-format").get_data(as_text=True)
    assert "search-behind" not in page
    hits = client.get("/api/search?q=zanzibarish&mode=keyword").get_json()["hits"]
    assert hits[0]["url"] == "/guides/psa-exam-format#is-there-a-zanzibarish-rule-for-the-psa"
    other = client.get("/guides/psa-resits")
    assert other.status_code == 200 and "search-behind" not in other.get_data(as_text=True)


def test_new_guide_without_an_index_shows_the_notice(tmp_path):
    content = tmp_path / "content"
    shutil.copytree(FIXTURE_CONTENT, content)
    app = create_app(
        {"TESTING": True, "KB_CONTENT_DIR": str(content), "KB_INDEX_DIR": str(tmp_path / "none")},
        embedder=HashEmbedder(),
    )
    response = app.test_client().get("/guides/psa-exam-format")
    assert response.status_code == 200 and "Search has not caught up" in response.get_data(as_text=True)


def test_healthz_hashes_the_guides_again_only_after_an_edit(preview, monkeypatch):
    import kb.service

    app, content, _, _ = preview
    client = app.test_client()
    reads = []
    real = kb.service.content_hashes
    monkeypatch.setattr(kb.service, "content_hashes", lambda *a, **k: reads.append(1) or real(*a, **k))

    first, second = client.get("/healthz").get_json(), client.get("/healthz").get_json()
    assert first["search_behind_content"] is False and second["search_behind_content"] is False
    assert len(reads) == 1  # unchanged content: the second health check read no guide

    with open(content / "psa" / "psa-exam-format.md", "a", encoding="utf-8") as fh:
        fh.write(NEW_SECTION)
    assert client.get("/healthz").get_json()["search_behind_content"] is True
    assert len(reads) == 2


def test_a_guide_whose_edit_breaks_the_checks_says_so_instead_of_404(preview):
    """A broken edit hides the guide with a 503 that says why; the writer previewing sees the lines."""
    app, content, _, _ = preview
    client = app.test_client()
    path = content / "psa" / "psa-exam-format.md"
    path.write_text(path.read_text(encoding="utf-8").replace("title:", "titel:", 1), encoding="utf-8")

    page = client.get("/guides/psa-exam-format")
    text = page.get_data(as_text=True)
    assert page.status_code == 503 and "This guide can&#39;t be shown right now" in text
    assert "does not pass the site&#39;s checks" in text and "error-details" not in text  # no file paths for readers
    assert 'id="error-search"' in text  # search still works while one guide is hidden: the page offers it
    api = client.get("/api/guides/psa-exam-format")
    assert (
        api.status_code == 503
        and api.get_json()["ok"] is False
        and "hidden until it is fixed" in api.get_json()["error"]
    )
    assert client.get("/guides/no-such-guide").status_code == 404  # a slug with no file is still not found

    app.config["DEBUG"] = True
    text = client.get("/guides/psa-exam-format").get_data(as_text=True)
    assert "error-details" in text and "psa-exam-format.md:" in text and "title" in text
    app.config["DEBUG"] = False
