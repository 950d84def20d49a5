"""Search analytics and guide feedback in one database: SQLite by default, PostgreSQL when configured.

Private by design: a search row holds the normalised query (e-mail addresses and long numbers
redacted), the mode and filters, the result count, how long it took and the hour it happened;
a click row holds the search's random id, the guide and its rank; a feedback row holds the
guide, yes/no and the optional comment. No IP address, cookie, user agent or user id is ever
stored, and rows older than the retention period are deleted.

Requests never wait for the database: `Recorder` queues events and a background thread writes
them in batches. A locked, read-only or unreachable database costs log lines, never a search.
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import logging
import os
import queue
import re
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from kb import clock
from kb.errors import StoreError

log = logging.getLogger(__name__)

SQLITE_FILE = "analytics.sqlite3"
MAX_QUERY = 300
MAX_COMMENT = 1000

metadata = MetaData()

searches = Table(
    "searches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("search_id", String(32), nullable=False, unique=True),
    Column("at", DateTime, nullable=False, index=True),
    Column("query", String(MAX_QUERY), nullable=False, index=True),
    Column("mode", String(16), nullable=False),
    Column("category", String(80)),
    Column("tag", String(80)),
    Column("results", Integer),
    Column("took_ms", Float),
    Column("source", String(8), nullable=False),
    # the verdict search gave: answered, related or not_covered (empty for searches recorded before it existed)
    Column("coverage", String(12), index=True),
)

clicks = Table(
    "clicks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("search_id", String(32), nullable=False, index=True),
    Column("at", DateTime, nullable=False, index=True),
    Column("slug", String(200), nullable=False, index=True),
    Column("rank", Integer),
    UniqueConstraint("search_id", "slug", name="uq_clicks_search_slug"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False, index=True),
    Column("slug", String(200), nullable=False, index=True),
    Column("helpful", Boolean, nullable=False),
    Column("comment", Text),
)

settings_table = Table(
    "kb_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(\.[\w-]+)+\b")
_LONG_NUMBER = re.compile(r"\d[\d -]{5,}\d")
_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
SEARCH_ID = re.compile(r"^[0-9a-f]{16,32}$")


def normalise_query(raw: str) -> str:
    """Lowercase, single-spaced, at most 300 characters; e-mail addresses and long numbers redacted.

    Students sometimes paste an e-mail address, a phone number or a GMC number into a search box;
    none of that is useful for finding content gaps, so it never reaches the database.
    """
    text = _CONTROL.sub(" ", raw or "")
    text = _EMAIL.sub("<email>", text)
    text = _LONG_NUMBER.sub("<number>", text)
    return _SPACE.sub(" ", text).strip().lower()[:MAX_QUERY]


def clean_comment(raw: str | None) -> str | None:
    text = _CONTROL.sub(" ", raw or "").strip()
    text = _EMAIL.sub("<email>", text)
    return text[:MAX_COMMENT] or None


def new_search_id() -> str:
    """A random id for one search; links its clicks to it and to nothing else."""
    return secrets.token_hex(8)


def _utcnow() -> dt.datetime:
    return clock.now()


def _hour(moment: dt.datetime) -> dt.datetime:
    # Stored to the hour: enough for trends, too coarse to match a row to a web server's access log.
    return moment.replace(minute=0, second=0, microsecond=0)


def database_url(setting: str, index_dir: Path | str) -> str:
    """The SQLAlchemy URL to use: KB_DATABASE_URL, or SQLite in the index folder when it is empty.

    `postgresql://` and `postgres://` URLs are pointed at the installed psycopg 3 driver.
    """
    setting = (setting or "").strip()
    if not setting:
        return f"sqlite:///{Path(index_dir).resolve() / SQLITE_FILE}"
    if setting.startswith("postgres://"):
        setting = "postgresql://" + setting[len("postgres://") :]
    if setting.startswith("postgresql://"):
        setting = "postgresql+psycopg://" + setting[len("postgresql://") :]
    return setting


def redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


F = TypeVar("F", bound=Callable[..., Any])


def _store_errors(method: F) -> F:
    """Raise what the database or its file system answered as StoreError, the library's own error type."""

    @functools.wraps(method)
    def wrapper(self: Store, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"{exc.__class__.__name__}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class SearchEvent:
    search_id: str
    query: str
    mode: str
    results: int | None
    took_ms: float | None = None
    category: str | None = None
    tag: str | None = None
    source: str = "page"
    at: dt.datetime = field(default_factory=_utcnow)
    coverage: str | None = None


@dataclass(frozen=True)
class ClickEvent:
    """A followed result. `query` creates the search row when none was recorded (as-you-type results)."""

    search_id: str
    slug: str
    rank: int | None
    query: str | None = None
    mode: str = "hybrid"
    at: dt.datetime = field(default_factory=_utcnow)


class Store:
    """The database layer for analytics and feedback: one SQLAlchemy engine, portable Core queries.

    Args:
        url: A SQLAlchemy URL (see `database_url`).
        retention_days: Rows older than this are deleted by `purge`.
        today: A pinned day (the KB_TODAY setting) for retention and report windows; None: KB_TODAY
            from the environment, else the real clock.

    Every public method raises StoreError when the database (or the folder it lives in) fails.
    """

    def __init__(self, url: str, retention_days: int = 180, today: str | dt.date | None = None):
        self.url = url
        self.retention_days = retention_days
        self.today = today
        self._engine: Engine | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._schema_lock = threading.Lock()
        self._schema_ready = False

    def now(self) -> dt.datetime:
        """The moment events are stamped with and windows are measured from (see kb.clock)."""
        return clock.now(self.today)

    @property
    def dialect(self) -> str:
        return make_url(self.url).get_backend_name()

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is not None and self._pid != os.getpid():
                # a forked worker must not share the parent's connections
                self._engine.dispose(close=False)
                self._engine = None
            if self._engine is None:
                self._engine = self._create_engine()
                self._pid = os.getpid()
            return self._engine

    def _create_engine(self) -> Engine:
        url = make_url(self.url)
        if url.get_backend_name() == "sqlite":
            # a "file:..." URI (uri=true, e.g. mode=ro) names no folder we should create
            if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(self.url, connect_args={"timeout": 5})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn, _record):
                cur = dbapi_conn.cursor()
                try:
                    cur.execute("PRAGMA journal_mode=WAL")
                    cur.execute("PRAGMA synchronous=NORMAL")
                except Exception:  # a read-only file still serves reads
                    pass
                finally:
                    cur.close()

            return engine
        return create_engine(
            self.url, pool_pre_ping=True, pool_size=2, max_overflow=2, connect_args={"connect_timeout": 5}
        )

    @_store_errors
    def ensure_schema(self) -> None:
        """Create the tables if they are missing (idempotent; safe from several processes at once)."""
        if self._schema_ready:
            return
        with self._schema_lock:  # threads of one process wait for each other; processes race and retry below
            if not self._schema_ready:
                self._create_schema()

    def _create_schema(self) -> None:
        try:
            metadata.create_all(self.engine, checkfirst=True)
        except SQLAlchemyError as exc:
            # another process may have created them between our check and create; a database that
            # could not be reached is not retried: that would hold the request for a second timeout
            if not isinstance(exc, IntegrityError) and "already exists" not in str(exc).lower():
                raise
            metadata.create_all(self.engine, checkfirst=True)
        self._add_missing_columns()
        self._schema_ready = True

    def _add_missing_columns(self) -> None:
        """Columns added since a database was created (searches.coverage): ALTER TABLE adds them, once."""
        have = {c["name"] for c in inspect(self.engine).get_columns("searches")}
        if "coverage" in have:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(text("ALTER TABLE searches ADD COLUMN coverage VARCHAR(12)"))
        except SQLAlchemyError:
            # another process added it first; anything else shows on the next query
            if "coverage" not in {c["name"] for c in inspect(self.engine).get_columns("searches")}:
                raise

    @_store_errors
    def unanswered(self, days: int = 30, limit: int = 500, now: dt.datetime | None = None) -> list[dict[str, Any]]:
        """Recorded questions search could not answer (verdict related or not_covered), most asked first.

        Returns:
            [{query, n, not_covered, related, last}] for the last `days` days.
        """
        self.ensure_schema()
        since = (now or self.now()) - dt.timedelta(days=days)
        n = func.count().label("n")
        nc = func.sum(case((searches.c.coverage == "not_covered", 1), else_=0)).label("not_covered")
        rel = func.sum(case((searches.c.coverage == "related", 1), else_=0)).label("related")
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(searches.c.query, n, nc, rel, func.max(searches.c.at).label("last"))
                .where(searches.c.at >= since, searches.c.coverage.in_(("not_covered", "related")))
                .group_by(searches.c.query)
                .order_by(n.desc(), searches.c.query)
                .limit(limit)
            ).all()
        return [
            {
                "query": r.query,
                "n": int(r.n),
                "not_covered": int(r.not_covered or 0),
                "related": int(r.related or 0),
                "last": r.last,
            }
            for r in rows
        ]

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    # ---- writes ---------------------------------------------------------------------------------
    @_store_errors
    def write(self, events: Iterable[SearchEvent | ClickEvent]) -> None:
        """Write a batch of events in one transaction; a duplicate click or search id is ignored."""
        self.ensure_schema()
        with self.engine.begin() as conn:
            for ev in events:
                if isinstance(ev, SearchEvent):
                    row = {
                        "search_id": ev.search_id,
                        "at": _hour(ev.at),
                        "query": normalise_query(ev.query),
                        "mode": ev.mode[:16],
                        "category": ev.category,
                        "tag": ev.tag,
                        "results": ev.results,
                        "took_ms": None if ev.took_ms is None else round(float(ev.took_ms), 2),
                        "source": ev.source[:8],
                        "coverage": ev.coverage[:12] if ev.coverage else None,
                    }
                    self._insert_ignoring_duplicate(conn, searches, row)
                else:
                    if ev.query is not None:
                        exists = conn.execute(select(searches.c.id).where(searches.c.search_id == ev.search_id)).first()
                        if not exists:
                            row = {
                                "search_id": ev.search_id,
                                "at": _hour(ev.at),
                                "query": normalise_query(ev.query),
                                "mode": ev.mode[:16],
                                "results": None,
                                "source": "live",
                            }
                            self._insert_ignoring_duplicate(conn, searches, row)
                    self._insert_ignoring_duplicate(
                        conn,
                        clicks,
                        {"search_id": ev.search_id, "at": _hour(ev.at), "slug": ev.slug[:200], "rank": ev.rank},
                    )

    @staticmethod
    def _insert_ignoring_duplicate(conn, table: Table, row: dict) -> None:
        try:
            with conn.begin_nested():
                conn.execute(insert(table).values(**row))
        except IntegrityError:
            pass

    @_store_errors
    def add_feedback(self, slug: str, helpful: bool, comment: str | None = None, at: dt.datetime | None = None) -> None:
        """Store one answer to "Was this helpful?" (synchronously: the reader is told if it failed)."""
        self.ensure_schema()
        with self.engine.begin() as conn:
            conn.execute(
                insert(feedback).values(
                    at=_hour(at or self.now()), slug=slug[:200], helpful=bool(helpful), comment=clean_comment(comment)
                )
            )

    @_store_errors
    def purge(self, now: dt.datetime | None = None) -> dict[str, int]:
        """Delete every row older than the retention period; returns rows deleted per table."""
        self.ensure_schema()
        cutoff = (now or self.now()) - dt.timedelta(days=self.retention_days)
        out = {}
        with self.engine.begin() as conn:
            for table in (searches, clicks, feedback):
                out[table.name] = conn.execute(delete(table).where(table.c.at < cutoff)).rowcount or 0
        return out

    @_store_errors
    def secret(self) -> bytes:
        """A random key shared by every process using this database (signs feedback forms)."""
        self.ensure_schema()
        with self.engine.begin() as conn:
            value = conn.execute(select(settings_table.c.value).where(settings_table.c.key == "form_secret")).scalar()
            if value is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(settings_table).values(key="form_secret", value=secrets.token_hex(32)))
                except IntegrityError:
                    pass
                value = conn.execute(
                    select(settings_table.c.value).where(settings_table.c.key == "form_secret")
                ).scalar()
        return bytes.fromhex(value)

    # ---- reads ----------------------------------------------------------------------------------
    @_store_errors
    def report(
        self, days: int = 30, limit: int = 20, guides: Mapping[str, str] | None = None, now: dt.datetime | None = None
    ) -> dict[str, Any]:
        """The content-gap report for the last `days` days.

        Args:
            days: Period covered.
            limit: Rows per list.
            guides: slug -> title of every guide now published (for "never clicked").

        Returns:
            A dict: totals, top_queries, zero_results, no_click, clicked_guides, never_clicked, feedback.
        """
        self.ensure_schema()
        since = (now or self.now()) - dt.timedelta(days=days)
        guides = guides or {}
        with self.engine.connect() as conn:
            report = {"days": days, "since": since.isoformat(timespec="seconds")}
            report.update(_search_lists(conn, since, limit))
            clicked_slugs = {
                r.slug: int(r.n)
                for r in conn.execute(
                    select(clicks.c.slug, func.count().label("n"))
                    .where(clicks.c.at >= since)
                    .group_by(clicks.c.slug)
                    .order_by(func.count().desc(), clicks.c.slug)
                )
            }
            report["clicked_guides"] = [
                {"slug": s, "title": guides.get(s, s), "clicks": c} for s, c in clicked_slugs.items()
            ]
            report["never_clicked"] = [
                {"slug": s, "title": guides[s]} for s in sorted(guides) if s not in clicked_slugs
            ]
            report["feedback"] = _feedback_rows(conn, since, guides)
        return report


def _search_lists(conn, since: dt.datetime, limit: int) -> dict[str, Any]:
    """The report's totals and its lists of queries: most asked, zero results, never followed."""
    clicked = select(clicks.c.search_id).where(clicks.c.at >= since).distinct().subquery()
    was_clicked = case((clicked.c.search_id.is_not(None), 1), else_=0)
    base = searches.outerjoin(clicked, clicked.c.search_id == searches.c.search_id)
    recent = searches.c.at >= since
    total, distinct, zero, with_click = conn.execute(
        select(
            func.count(),
            func.count(func.distinct(searches.c.query)),
            func.coalesce(func.sum(case((searches.c.results == 0, 1), else_=0)), 0),
            func.coalesce(func.sum(was_clicked), 0),
        )
        .select_from(base)
        .where(recent)
    ).one()
    n = func.count().label("n")
    clicks_n = func.coalesce(func.sum(was_clicked), 0).label("clicked")
    top = conn.execute(
        select(searches.c.query, n, func.avg(searches.c.results).label("results"), clicks_n)
        .select_from(base)
        .where(recent)
        .group_by(searches.c.query)
        .order_by(n.desc(), searches.c.query)
        .limit(limit)
    ).all()
    zero_rows = conn.execute(
        select(searches.c.query, n, func.max(searches.c.at).label("last"))
        .where(recent, searches.c.results == 0)
        .group_by(searches.c.query)
        .order_by(n.desc(), searches.c.query)
        .limit(limit)
    ).all()
    no_click = conn.execute(
        select(searches.c.query, n, func.max(searches.c.results).label("results"))
        .select_from(base)
        .where(recent, searches.c.results > 0)
        .group_by(searches.c.query)
        .having(func.sum(was_clicked) == 0)
        .order_by(n.desc(), searches.c.query)
        .limit(limit)
    ).all()
    return {
        "totals": {
            "searches": int(total),
            "distinct_queries": int(distinct),
            "zero_result_searches": int(zero),
            "searches_with_click": int(with_click),
        },
        "top_queries": [
            {
                "query": r.query,
                "searches": int(r.n),
                "avg_results": None if r.results is None else round(float(r.results), 1),
                "clicked": int(r.clicked),
            }
            for r in top
        ],
        "zero_results": [
            {"query": r.query, "searches": int(r.n), "last": r.last.isoformat(timespec="minutes") if r.last else None}
            for r in zero_rows
        ],
        "no_click": [{"query": r.query, "searches": int(r.n), "results": r.results} for r in no_click],
    }


def _feedback_rows(conn, since: dt.datetime, guides: Mapping[str, str]) -> list[dict[str, Any]]:
    """Guides by "not helpful" votes, most first, each with up to three recent comments."""
    no_n = func.sum(case((feedback.c.helpful.is_(False), 1), else_=0)).label("no")
    yes_n = func.sum(case((feedback.c.helpful.is_(True), 1), else_=0)).label("yes")
    fb = conn.execute(
        select(feedback.c.slug, no_n, yes_n)
        .where(feedback.c.at >= since)
        .group_by(feedback.c.slug)
        .order_by(no_n.desc(), yes_n, feedback.c.slug)
    ).all()
    comments: dict[str, list[str]] = {}
    for slug, comment in conn.execute(
        select(feedback.c.slug, feedback.c.comment)
        .where(feedback.c.at >= since, feedback.c.helpful.is_(False), feedback.c.comment.is_not(None))
        .order_by(feedback.c.at.desc(), feedback.c.id.desc())
    ):
        bucket = comments.setdefault(slug, [])
        if len(bucket) < 3:
            bucket.append(comment)
    return [
        {
            "slug": r.slug,
            "title": guides.get(r.slug, r.slug),
            "no": int(r.no or 0),
            "yes": int(r.yes or 0),
            "comments": comments.get(r.slug, []),
        }
        for r in fb
    ]


_RECORDERS: weakref.WeakSet[Recorder] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    # a worker that exits (gunicorn max_requests, shutdown) writes what it queued first
    for recorder in list(_RECORDERS):
        recorder.flush(2.0)


class Recorder:
    """Queues search and click events and writes them from one background thread.

    `submit` never blocks and never raises: when the queue is full (the database is down or far
    too slow) events are dropped and counted. Purges old rows at most once an hour.

    Args:
        store: Where to write.
        max_queue: Events held in memory at most.
    """

    PURGE_EVERY = 3600.0

    def __init__(self, store: Store, max_queue: int = 10000):
        self.store = store
        self.max_queue = max_queue
        self.dropped = 0
        self.failed = 0
        self._failing = 0  # events lost since the last successful write (the current outage)
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._last_purge = 0.0
        self._last_warning = 0.0
        _RECORDERS.add(self)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            if self._pid != os.getpid():
                self._queue = queue.Queue(maxsize=self.max_queue)  # a forked child starts empty
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="kb-analytics", daemon=True)
            self._thread.start()

    def submit(self, ev: SearchEvent | ClickEvent) -> bool:
        """Queue an event; False when it was dropped."""
        try:
            self._ensure_thread()
            self._queue.put_nowait(ev)
            return True
        except queue.Full:
            self.dropped += 1
            self._warn(f"analytics queue full; {self.dropped} event(s) dropped so far")
            return False
        except Exception as exc:  # never let analytics reach a request
            self.dropped += 1
            self._warn(f"analytics event dropped ({exc.__class__.__name__}: {exc})")
            return False

    @property
    def lost(self) -> int:
        """Events this process never recorded: dropped from a full queue or failed to write."""
        return self.dropped + self.failed

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event has been written (or failed); True if the queue drained."""
        if self._thread is None or self._pid != os.getpid():
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return self._queue.unfinished_tasks == 0

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            log.warning(message)

    def _run(self) -> None:
        q = self._queue
        while True:
            batch = [q.get()]
            while len(batch) < 200:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            finally:
                for _ in batch:
                    q.task_done()

    def _write(self, batch: list) -> None:
        try:
            self.store.write(batch)
        except Exception as exc:  # the database is down, locked or read-only: log, drop, carry on
            self.failed += len(batch)
            self._failing += len(batch)
            # at most one line a minute, so each carries the totals rather than this batch alone
            self._warn(
                f"could not record {len(batch)} analytics event(s) in {redact_url(self.store.url)}: "
                f"{exc.__class__.__name__}: {str(exc)[:200]}; "
                f"{self._failing} lost in this outage, {self.lost} since the server started"
            )
            return
        if self._failing:
            log.warning(
                "analytics recording resumed; %d analytics event(s) were lost while the database failed (%d "
                "since the server started)",
                self._failing,
                self.lost,
            )
            self._failing = 0
        if time.monotonic() - self._last_purge > self.PURGE_EVERY:
            self._last_purge = time.monotonic()
            try:
                self.store.purge()
            except Exception as exc:  # the rows were written; old ones go at the next purge
                log.warning("could not purge old analytics rows: %s: %s", exc.__class__.__name__, str(exc)[:200])
