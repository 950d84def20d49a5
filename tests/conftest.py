"""Shared fixtures: one real-model index of the fixture guides per session, app/client/runner."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from app import create_app  # noqa: E402
from kb.engines.embedding import make_encoder  # noqa: E402
from kb.index.build import build_index  # noqa: E402
from tests.fakes import HashEmbedder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
FIXTURE_CONTENT = FIXTURES / "content"
MALFORMED = FIXTURES / "malformed"

# The day every test is judged on unless it says otherwise: the suite never reads the machine's calendar.
# The fixture guides were written to be current on this day.
FIXTURE_TODAY = dt.date(2026, 11, 25)


def content_today(content_dir: Path = ROOT / "content") -> dt.date:
    """The day tests of the real guides judge dates on: the newest `last_reviewed` among them.

    Taken from the content, never from the clock, so a guide reviewed today is not "in the future"
    and the answer is the same on any day the suite runs.
    """
    days = re.findall(
        r"^last_reviewed:\s*(\d{4}-\d{2}-\d{2})",
        "\n".join(p.read_text(encoding="utf-8") for p in content_dir.rglob("*.md")),
        re.M,
    )
    return max(dt.date.fromisoformat(d) for d in days)


@pytest.fixture(autouse=True)
def pinned_today(monkeypatch) -> dt.date:
    """Pin "today" (KB_TODAY, the library's one way in) for every test and every process it starts."""
    monkeypatch.setenv("KB_TODAY", FIXTURE_TODAY.isoformat())
    return FIXTURE_TODAY


@pytest.fixture(scope="session")
def real_embedder():
    return make_encoder()


@pytest.fixture(scope="session")
def fixture_index(tmp_path_factory, real_embedder) -> Path:
    """The fixture guides indexed with the real packaged all-MiniLM-L6-v2 model."""
    index = tmp_path_factory.mktemp("index")
    build_index(FIXTURE_CONTENT, index, real_embedder)
    return index


@pytest.fixture
def content_copy(tmp_path) -> Path:
    dest = tmp_path / "content"
    shutil.copytree(FIXTURE_CONTENT, dest)
    return dest


@pytest.fixture
def fake_embedder():
    return HashEmbedder()


@pytest.fixture
def analytics_site(content_copy, tmp_path):
    """make(**config) -> (app, client): a site on the fixture guides (fast fake encoder) with its own SQLite
    analytics file, `make.db`; keyword arguments add to or override the settings."""
    embedder = HashEmbedder()
    index = tmp_path / "index"
    build_index(content_copy, index, embedder)
    db = tmp_path / "analytics.sqlite3"

    def make(**overrides):
        config = {
            "TESTING": True,
            "KB_CONTENT_DIR": str(content_copy),
            "KB_INDEX_DIR": str(index),
            "KB_RELOAD_INTERVAL": 0,
            "KB_DATABASE_URL": f"sqlite:///{db}",
            **overrides,
        }
        app = create_app(config, embedder=embedder)
        return app, app.test_client()

    make.db = db
    return make


@pytest.fixture
def app(fixture_index, real_embedder):
    return create_app(
        {
            "TESTING": True,
            "KB_CONTENT_DIR": str(FIXTURE_CONTENT),
            "KB_INDEX_DIR": str(fixture_index),
            "KB_RELOAD_INTERVAL": 0,
        },
        embedder=real_embedder,
    )


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()
