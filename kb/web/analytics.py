"""Analytics hooks: searches and followed results are recorded; guide pages ask "Was this helpful?".

Nothing here identifies a reader. Result links stay clean guide URLs; a followed result is reported
to /api/click with the search's random id by the link's `ping` attribute (the browser does it,
no script needed) and by a beacon from search.js, without cookies. Feedback forms carry a signed,
short-lived token and must come from this site (Origin / Referer / Sec-Fetch-Site); posts are
rate-limited per client by a keyed hash of the IP address (behind KB_PROXY_HOPS proxies, the address
they forwarded) held in memory only, never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import Flask, current_app, jsonify, redirect, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from kb.errors import KBError, NotFoundError, QueryError, StoreError
from kb.store import SEARCH_ID, ClickEvent, Recorder, SearchEvent, Store, database_url, new_search_id, redact_url
from kb.web import bp, error_response, kb, whole_number

if TYPE_CHECKING:
    from kb.search.present import SearchResponse
    from kb.search.request import SearchRequest

log = logging.getLogger(__name__)

# A form token is valid this long after its guide page was served: time to read the longest guide
# and write a comment. Tokens are not tied to a reader (nothing identifies one) and every guide page
# brings a new one, so it is the per-client rate limit that bounds scripted posts; the short life
# keeps a token copied from a page from being replayed for days.
FEEDBACK_TOKEN_MAX_AGE = 2 * 3600
# While the database holding the shared signing key is unreachable, a worker asks again at most
# this often, so a database that is down does not add its connect timeout to every guide page.
KEY_RETRY_INTERVAL = 5.0
FEEDBACK_LIMIT = 5  # posts per client per window
FEEDBACK_WINDOW = 600.0  # seconds


class Forbidden(KBError):
    """A form post that did not come from this site's own page."""

    status = 403


class RateLimited(KBError):
    """Too many posts from one client in a short time."""

    status = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(KBError):
    """The analytics database could not take a write the reader is waiting for."""

    status = 503


FEEDBACK_UNAVAILABLE = "feedback cannot be taken just now; please try again in a few minutes"


class RateLimiter:
    """Sliding-window limit per client, keyed by a salted hash of the address, in memory only.

    The salt is random per process and never stored, so the keys cannot be reversed or matched
    with anything after a restart. Each worker process limits on its own.
    """

    def __init__(self, limit: int = FEEDBACK_LIMIT, window: float = FEEDBACK_WINDOW, max_clients: int = 10000):
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._salt = secrets.token_bytes(16)
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, address: str) -> str:
        return hmac.new(self._salt, (address or "?").encode(), hashlib.sha256).hexdigest()[:20]

    def hit(self, address: str, now: float | None = None) -> int:
        """Count one post; return 0 if allowed, else the seconds until the client may post again."""
        now = time.monotonic() if now is None else now
        key = self.key(address)
        with self._lock:
            times = self._hits.pop(key, deque())
            while times and now - times[0] >= self.window:
                times.popleft()
            if len(times) >= self.limit:
                self._hits[key] = times
                return max(1, int(self.window - (now - times[0])) + 1)
            times.append(now)
            self._hits[key] = times
            while len(self._hits) > self.max_clients:
                self._hits.popitem(last=False)
            return 0


class Analytics:
    """The site's analytics and feedback: one Store, one background Recorder, one limiter."""

    def __init__(self, settings: dict, secret_key: str | bytes | None = None):
        self.enabled = bool(settings["KB_LOG_SEARCHES"])
        self.store = Store(
            database_url(settings["KB_DATABASE_URL"], settings["KB_INDEX_DIR"]),
            settings["KB_ANALYTICS_RETENTION_DAYS"],
            settings.get("KB_TODAY"),
        )
        self.recorder = Recorder(self.store)
        self.limiter = RateLimiter()
        self._secret_key = secret_key
        self._serializer: URLSafeTimedSerializer | None = None
        self._lock = threading.Lock()
        self._key_retry_at = 0.0  # time.monotonic() before which the database is not asked again
        self._key_fetching = False

    # ---- searches and clicks ----------------------------------------------------------------------
    def log_search(self, request: SearchRequest, response: SearchResponse, source: str) -> str | None:
        """Record a search (never raises); returns its id for result links, or None when logging is off.

        As-you-type requests (`source == "live"`) are not recorded: a search typed letter by letter
        would log every prefix. Their results still carry an id, and a followed one records the
        search together with the click.
        """
        if not self.enabled:
            return None
        search_id = new_search_id()
        if source != "live":
            self.recorder.submit(
                SearchEvent(
                    search_id,
                    request.query,
                    request.mode,
                    len(response.groups),
                    response.took_ms,
                    request.category,
                    request.tag,
                    source,
                    at=self.store.now(),
                    coverage=response.coverage.verdict,
                )
            )
        return search_id

    def log_click(self, search_id: str, slug: str, rank: int | None, query: str | None) -> None:
        if self.enabled:
            self.recorder.submit(ClickEvent(search_id, slug, rank, query, at=self.store.now()))

    # ---- feedback forms ---------------------------------------------------------------------------
    def serializer(self) -> URLSafeTimedSerializer:
        """The signer of feedback forms: FLASK_SECRET_KEY, else the key kept in the analytics database.

        The database's key is shared by every worker and machine using it, so it is the only one
        worth caching: while it cannot be read this raises StoreUnavailable (asking again after
        KEY_RETRY_INTERVAL), rather than signing with a key no other worker would accept.
        """
        serializer = self._serializer
        if serializer is not None:
            return serializer
        if self._secret_key:
            with self._lock:
                self._serializer = self._serializer or URLSafeTimedSerializer(self._secret_key, salt="kb-feedback")
                return self._serializer
        with self._lock:
            if self._serializer is not None:
                return self._serializer
            # one thread asks the database; the others do not queue behind a slow connect
            if self._key_fetching or time.monotonic() < self._key_retry_at:
                raise StoreUnavailable(FEEDBACK_UNAVAILABLE)
            self._key_fetching = True
        try:
            key = self.store.secret()
        except Exception as exc:
            with self._lock:
                self._key_fetching = False
                self._key_retry_at = time.monotonic() + KEY_RETRY_INTERVAL
            log.warning(
                "feedback forms cannot be signed until the database answers (%s: %s); asking again in %g s",
                redact_url(self.store.url),
                (exc.__cause__ if isinstance(exc, StoreError) else exc).__class__.__name__,
                KEY_RETRY_INTERVAL,
            )
            raise StoreUnavailable(FEEDBACK_UNAVAILABLE) from exc
        with self._lock:
            self._key_fetching = False
            self._serializer = URLSafeTimedSerializer(key, salt="kb-feedback")
            return self._serializer

    def form_token(self, slug: str) -> str:
        """The token a guide page's feedback form carries; empty while forms cannot be signed.

        The page still renders; a post with the empty token is answered 503 while the database is
        down, and 403 "reload the guide page" once it is back.
        """
        try:
            return self.serializer().dumps(slug)
        except StoreUnavailable:
            return ""

    def check_token(self, slug: str, token: str) -> None:
        try:
            if self.serializer().loads(token or "", max_age=FEEDBACK_TOKEN_MAX_AGE) == slug:
                return
        except SignatureExpired as exc:
            raise Forbidden("this form has expired; reload the page and send your feedback again") from exc
        except BadSignature:
            pass
        raise Forbidden("this form could not be verified; reload the guide page and send your feedback from there")


def analytics() -> Analytics:
    return current_app.extensions["kb_analytics"]


def _same_origin() -> bool:
    """True unless the browser says the post came from another site."""
    host = request.host.lower()
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin != "null" and urlsplit(origin).netloc.lower() == host
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    referer = request.headers.get("Referer")
    if referer:
        return urlsplit(referer).netloc.lower() == host
    return True  # non-browser clients send neither header; the signed token is still required


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" or request.path.startswith("/api/")


@bp.post("/api/click")
def api_click():
    """A followed result: `s` search id, `g` guide slug, `r` rank, and `q` for as-you-type results.

    Sent by the browser itself through the result link's `ping` attribute (no JavaScript needed
    where pings are enabled) and by search.js with navigator.sendBeacon; a repeat is ignored.
    204 (an unknown search id or guide is ignored): a reader's navigation never waits on or fails
    because of this. A rank that is not a whole number from 1 to 1000 is a 400: the links the site
    writes never carry one.
    """
    search_id = request.args.get("s", "")
    slug = request.args.get("g", "")
    raw_rank = request.args.get("r", "")
    rank = whole_number(raw_rank, "r", 1, 1000, " (a result's rank)") if raw_rank else None
    if SEARCH_ID.match(search_id) and slug in kb().library.snapshot().by_slug:
        query = (request.args.get("q") or "")[:300] or None
        try:
            analytics().log_click(search_id, slug, rank, query)
        except Exception:  # never let analytics reach a reader
            log.exception("could not queue a click")
    resp = current_app.response_class(status=204)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/guides/<slug>/feedback")
def guide_feedback(slug: str):
    """Store "Was this helpful?": a form post (303 back to the guide) or, with Accept: JSON, an API call."""
    try:
        return _feedback(slug)
    except KBError as exc:
        if not _wants_json():
            raise
        extra = {"param": exc.param} if getattr(exc, "param", None) else {}
        resp = jsonify({"ok": False, "error": exc.message, "status": exc.status, **extra})
        resp.status_code = exc.status
        if isinstance(exc, RateLimited):
            resp.headers["Retry-After"] = str(exc.retry_after)
        return resp


def _feedback(slug: str):
    a = analytics()
    if slug not in kb().library.snapshot().by_slug:
        raise NotFoundError(f"no guide called '{slug[:80]}'")
    if not _same_origin():
        raise Forbidden("feedback can only be sent from this site's own guide pages")
    a.check_token(slug, request.form.get("token", ""))
    helpful_raw = (request.form.get("helpful") or "").strip().lower()
    if helpful_raw not in ("yes", "no"):
        raise QueryError("field 'helpful' must be 'yes' or 'no'", "helpful")
    comment = request.form.get("comment") or ""
    if len(comment) > 1000:
        raise QueryError(f"field 'comment' is {len(comment)} characters long; the limit is 1000", "comment")
    wait = a.limiter.hit(request.remote_addr or "")
    if wait:
        raise RateLimited(f"thanks, but that is a lot of feedback at once; please try again in {wait} seconds", wait)
    try:
        a.store.add_feedback(slug, helpful_raw == "yes", comment)
    except StoreError as exc:
        log.error(
            "could not store feedback in %s: %s", redact_url(a.store.url), (exc.__cause__ or exc).__class__.__name__
        )
        raise StoreUnavailable("your feedback could not be saved just now; please try again later") from exc
    if _wants_json():
        return jsonify({"ok": True, "slug": slug, "helpful": helpful_raw == "yes"})
    return redirect(f"/guides/{slug}?feedback=thanks#feedback", code=303)


def init_app(app: Flask) -> None:
    """Create the store and recorder for this app and make `feedback_token` available to templates."""
    settings = app.extensions["kb"].settings
    a = Analytics(settings, app.config.get("SECRET_KEY"))
    app.extensions["kb_analytics"] = a
    app.jinja_env.globals["feedback_token"] = a.form_token

    @app.errorhandler(RateLimited)
    def _rate_limited(exc: RateLimited):
        resp, status = error_response(exc.status, exc.message)
        resp = app.make_response((resp, status))
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
