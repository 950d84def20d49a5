"""kb.store against SQLite and against a real PostgreSQL server started for the session."""

import datetime as dt
import os

import pytest
from sqlalchemy import insert, inspect, select

from kb.errors import StoreError
from kb.store import (
    ClickEvent,
    Recorder,
    SearchEvent,
    Store,
    clicks,
    database_url,
    feedback,
    metadata,
    new_search_id,
    normalise_query,
    searches,
    settings_table,
)
from tests.pg_server import TemporaryPostgres

GUIDES = {
    "psa-resits": "What happens if you fail the PSA?",
    "ward-round-basics": "Ward rounds",
    "study-groups": "Study groups",
}


@pytest.fixture(scope="session")
def pg_url():
    """A PostgreSQL URL: KB_TEST_DATABASE_URL, or a throwaway cluster on loopback for this session."""
    url = os.environ.get("KB_TEST_DATABASE_URL")
    if url:
        yield database_url(url, ".")
        return
    server = TemporaryPostgres().start()  # raises (fails the tests) when PostgreSQL is not installed
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'analytics.sqlite3'}", retention_days=30)
    else:
        s = Store(request.getfixturevalue("pg_url"), retention_days=30)
        metadata.drop_all(s.engine)  # each test starts from empty tables
    yield s
    s.dispose()


def search(store, query, results, clicked=None, **kw):
    sid = new_search_id()
    events = [SearchEvent(sid, query, kw.pop("mode", "hybrid"), results, 12.5, **kw)]
    if clicked:
        events.append(ClickEvent(sid, clicked, 1))
    store.write(events)
    return sid


def test_store_backend_is_what_was_asked(store):
    assert store.dialect in ("sqlite", "postgresql")
    store.ensure_schema()
    assert {"searches", "clicks", "feedback", "kb_settings"} <= set(inspect(store.engine).get_table_names())


def test_settings_hold_only_what_is_read_and_old_rows_do_no_harm(store):
    key = store.secret()
    with store.engine.connect() as conn:
        assert [k for (k,) in conn.execute(select(settings_table.c.key))] == ["form_secret"]
    with store.engine.begin() as conn:  # a database written before schema_version was dropped
        conn.execute(insert(settings_table).values(key="schema_version", value="1"))
    again = Store(store.url, retention_days=30)
    try:
        assert again.secret() == key
        search(again, "after the upgrade", 1)
        assert again.report(guides=GUIDES)["totals"]["searches"] == 1
    finally:
        again.dispose()


def test_database_failures_are_store_errors(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the database folder should be")
    store = Store(f"sqlite:///{blocker / 'analytics.sqlite3'}")
    with pytest.raises(StoreError) as info:  # the folder cannot be made
        store.secret()
    assert isinstance(info.value.__cause__, OSError) and info.value.status == 503
    db = tmp_path / "analytics.sqlite3"
    Store(f"sqlite:///{db}").ensure_schema()
    read_only = Store(f"sqlite:///file:{db}?mode=ro&uri=true")
    with pytest.raises(StoreError) as info:  # what SQLAlchemy raised, as the library's own error
        read_only.add_feedback("psa-resits", True)
    assert "readonly database" in info.value.message and info.value.__cause__.__class__.__name__ == "OperationalError"


def test_report_lists_top_zero_result_unclicked_queries_and_guides(store):
    search(store, "PSA resit", 3, clicked="psa-resits")
    search(store, "psa   RESIT ", 3)
    search(store, "ward round", 2)
    search(store, "parking at the hospital", 0)
    search(store, "parking at the hospital", 0)
    store.write(
        [ClickEvent(new_search_id(), "ward-round-basics", 2, query="ward round etiquette")]
    )  # an as-you-type result followed
    r = store.report(days=30, limit=10, guides=GUIDES)
    assert r["totals"] == {"searches": 6, "distinct_queries": 4, "zero_result_searches": 2, "searches_with_click": 2}
    top = {q["query"]: q for q in r["top_queries"]}
    assert (
        top["psa resit"]["searches"] == 2
        and top["psa resit"]["clicked"] == 1
        and top["psa resit"]["avg_results"] == 3.0
    )
    assert r["top_queries"][0]["query"] in ("psa resit", "parking at the hospital")
    assert r["zero_results"] == [
        {"query": "parking at the hospital", "searches": 2, "last": r["zero_results"][0]["last"]}
    ]
    assert [q["query"] for q in r["no_click"]] == ["ward round"]
    assert {g["slug"]: g["clicks"] for g in r["clicked_guides"]} == {"psa-resits": 1, "ward-round-basics": 1}
    assert [g["slug"] for g in r["never_clicked"]] == ["study-groups"]
    live = [q for q in r["top_queries"] if q["query"] == "ward round etiquette"]
    assert live and live[0]["clicked"] == 1


def test_repeated_clicks_and_search_ids_are_recorded_once(store):
    sid = search(store, "psa", 2)
    store.write([ClickEvent(sid, "psa-resits", 1), ClickEvent(sid, "psa-resits", 1)])  # the ping and the beacon
    store.write([ClickEvent(sid, "psa-resits", 1, query="psa")])
    store.write([SearchEvent(sid, "psa", "hybrid", 2)])
    with store.engine.connect() as conn:
        assert conn.execute(select(clicks)).all().__len__() == 1
        assert conn.execute(select(searches)).all().__len__() == 1


def test_queries_are_normalised_and_redacted_times_rounded_to_the_hour(store):
    search(store, "  Email ME at jo.bloggs@student.ac.uk or 07700 900123  ", 1, mode="keyword", category="psa")
    with store.engine.connect() as conn:
        row = conn.execute(select(searches)).one()
    assert row.query == "email me at <email> or <number>"
    assert (
        row.mode == "keyword"
        and row.category == "psa"
        and row.results == 1
        and row.took_ms == 12.5
        and row.source == "page"
    )
    assert row.at.minute == 0 and row.at.second == 0
    assert normalise_query("GMC 7654321") == "gmc <number>" and normalise_query("a\x00b") == "a b"


def test_feedback_is_listed_by_negative_answers_with_comments(store):
    store.add_feedback("psa-resits", False, "Nothing about resit fees")
    store.add_feedback("psa-resits", False, None)
    store.add_feedback("psa-resits", True)
    store.add_feedback("study-groups", True, "great")
    store.add_feedback("ward-round-basics", False, "write to me: a@b.co")
    r = store.report(guides=GUIDES)
    assert [(f["slug"], f["no"], f["yes"]) for f in r["feedback"]] == [
        ("psa-resits", 2, 1),
        ("ward-round-basics", 1, 0),
        ("study-groups", 0, 1),
    ]
    assert r["feedback"][0]["comments"] == ["Nothing about resit fees"]
    assert r["feedback"][1]["comments"] == ["write to me: <email>"]


def test_retention_purges_old_rows(store):
    old = store.now() - dt.timedelta(days=45)
    sid = new_search_id()
    store.write([SearchEvent(sid, "old question", "hybrid", 0, at=old), ClickEvent(sid, "psa-resits", 1, at=old)])
    store.add_feedback("psa-resits", False, "old", at=old)
    search(store, "new question", 0)
    assert store.purge() == {"searches": 1, "clicks": 1, "feedback": 1}
    r = store.report(days=3650)
    assert [q["query"] for q in r["zero_results"]] == ["new question"] and r["feedback"] == []


def test_retention_and_report_windows_count_back_from_the_injected_day(store, monkeypatch):
    """Windows are measured from "today" as injected (KB_TODAY), so they give one answer on any day the suite runs."""
    day = dt.date(2031, 3, 1)
    monkeypatch.setenv("KB_TODAY", day.isoformat())
    assert store.now().date() == day
    noon = dt.datetime(2031, 3, 1, 12)
    store.write(
        [
            SearchEvent(new_search_id(), q, "hybrid", 0, at=noon - dt.timedelta(days=age))
            for q, age in [("kept", 29), ("gone", 31)]
        ]
    )
    assert [q["query"] for q in store.report(days=30)["zero_results"]] == [
        "kept"
    ]  # 31 days old: outside a 30-day report
    assert store.purge()["searches"] == 1  # retention is 30 days in this fixture
    assert [q["query"] for q in store.report(days=3650)["zero_results"]] == ["kept"]
    # a store given its own day (the KB_TODAY setting of an app) uses it over the environment
    pinned = Store(store.url, retention_days=30, today="2031-05-01")
    try:
        assert pinned.now().date() == dt.date(2031, 5, 1)
        assert pinned.purge()["searches"] == 1
    finally:
        pinned.dispose()


def test_form_secret_is_shared_by_every_process_on_the_database(store):
    other = Store(store.url)
    try:
        assert store.secret() == other.secret() and len(store.secret()) == 32
    finally:
        other.dispose()


def test_recorder_writes_in_the_background(store):
    rec = Recorder(store)
    sid = new_search_id()
    assert rec.submit(SearchEvent(sid, "background", "hybrid", 1)) and rec.submit(ClickEvent(sid, "psa-resits", 1))
    assert rec.flush(10)
    with store.engine.connect() as conn:
        assert conn.execute(select(searches.c.query)).scalar() == "background"
        assert conn.execute(select(clicks.c.slug)).scalar() == "psa-resits"
        assert conn.execute(select(feedback)).first() is None


@pytest.mark.parametrize(
    "url",
    ["sqlite:////proc/no-such-dir/analytics.sqlite3", "postgresql+psycopg://nobody@127.0.0.1:1/none"],
    ids=["unwritable-sqlite", "unreachable-postgresql"],
)
def test_recorder_swallows_database_failures(url, caplog):
    rec = Recorder(Store(url))
    for _ in range(3):
        assert rec.submit(SearchEvent(new_search_id(), "q", "hybrid", 1)) is True
    assert rec.flush(30)
    assert rec.failed == 3 and "could not record" in caplog.text


def test_recorder_drops_when_its_queue_is_full(tmp_path):
    rec = Recorder(Store(f"sqlite:///{tmp_path / 'a.sqlite3'}"), max_queue=1)
    rec._ensure_thread = lambda: None  # no writer: the queue fills up
    assert rec.submit(SearchEvent(new_search_id(), "a", "hybrid", 1))
    assert rec.submit(SearchEvent(new_search_id(), "b", "hybrid", 1)) is False and rec.dropped == 1


def test_database_url_defaults_and_driver():
    assert database_url("", "/srv/index") == "sqlite:////srv/index/analytics.sqlite3"
    assert database_url("postgres://u:p@db/kb", ".") == "postgresql+psycopg://u:p@db/kb"
    assert database_url("postgresql://u@db/kb", ".") == "postgresql+psycopg://u@db/kb"
    assert database_url("sqlite:////tmp/x.db", ".") == "sqlite:////tmp/x.db"


def test_a_database_from_before_coverage_gets_the_column_once(tmp_path):
    """Databases created before verdicts were recorded gain searches.coverage; their rows keep working."""
    import sqlite3

    db = tmp_path / "old.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE searches (id INTEGER PRIMARY KEY, search_id VARCHAR(32) NOT NULL UNIQUE, at DATETIME "
            "NOT NULL, query VARCHAR(300) NOT NULL,"
            " mode VARCHAR(16) NOT NULL, category VARCHAR(80), tag VARCHAR(80), results INTEGER, took_ms FLOAT, "
            "source VARCHAR(8) NOT NULL)"
        )
        conn.execute(
            "INSERT INTO searches (search_id, at, query, mode, results, source) VALUES ('aaaa000000000000', "
            "'2026-11-25 10:00:00', 'old question', 'hybrid', 3, 'page')"
        )
    for _ in range(2):  # a second process finds it already there
        s = Store(f"sqlite:///{db}", retention_days=3650)
        try:
            s.write([SearchEvent(new_search_id(), "new question", "hybrid", 0, coverage="not_covered")])
            assert [r["query"] for r in s.unanswered(days=3650)] == ["new question"]
        finally:
            s.dispose()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM searches WHERE coverage IS NULL").fetchone() == (1,)
