"""The only package that imports Flask: the site's blueprint, error mapping and headers."""

from __future__ import annotations

import datetime as dt
import logging
from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from kb.errors import KBError, QueryError
from kb.service import KnowledgeBase

log = logging.getLogger(__name__)

bp = Blueprint("site", __name__, template_folder="templates", static_folder="static", static_url_path="/static")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def kb() -> KnowledgeBase:
    return current_app.extensions["kb"]


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def error_response(status: int, message: str, title: str | None = None, details: tuple[str, ...] = (), **extra):
    """The one error shape: JSON for the API, else the error page (`title` and `details` are the page's alone)."""
    if wants_json():
        return jsonify({"ok": False, "error": message, "status": status, **extra}), status
    page = render_template("error.html", status=status, message=message, title=title, details=details, **extra)
    return page, status


def whole_number(raw: str, param: str, low: int, high: int, what: str = "") -> int:
    """A query parameter that must be a whole number from `low` to `high`; a QueryError naming it otherwise."""
    # isdecimal, not isdigit: int() refuses digits such as '²' that isdigit accepts
    if not (raw.isdecimal() and len(raw) <= len(str(high)) and low <= int(raw) <= high):
        raise QueryError(
            f"parameter '{param}' must be a whole number from {low} to {high}{what}, got '{raw[:20]}'", param
        )
    return int(raw)


class SafeJSONProvider(DefaultJSONProvider):
    """JSON that is also safe to drop into HTML: <, > and & are escaped as \\u003c etc."""

    ensure_ascii = True
    sort_keys = False

    def dumps(self, obj, **kwargs) -> str:
        text = super().dumps(obj, **kwargs)
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def same_site_location(location: str) -> str:
    """A redirect target as a path on this site.

    Werkzeug's own redirects (e.g. merging `//` in a path) are absolute URLs built from the
    client's Host header; the site only ever redirects to itself, so the scheme and host are
    dropped and the browser resolves the path against the address it asked for. Leading slashes
    are collapsed so the result can never be read as `//other.host/...`.
    """
    parts = urlsplit(location)
    path = "/" + parts.path.lstrip("/\\")
    return urlunsplit(("", "", path, parts.query, parts.fragment))


def init_app(app: Flask, knowledge_base: KnowledgeBase) -> None:
    """Attach the knowledge base, routes, error handlers and security headers to an app."""
    app.json = SafeJSONProvider(app)
    hops = knowledge_base.settings["KB_PROXY_HOPS"]
    if hops:
        # the reader's address (for the feedback rate limit) and scheme come from the proxies' headers,
        # taking exactly `hops` entries from the right: anything a client adds further left is ignored
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    # The site sets no cookies today; should a session ever appear, it is born secure.
    app.config.update(SESSION_COOKIE_SECURE=True, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.extensions["kb"] = knowledge_base
    from kb.web import analytics, maintainers, routes  # noqa: F401  (registers the views on bp)

    app.register_blueprint(bp)
    analytics.init_app(app)
    maintainers.init_app(app)

    @app.errorhandler(KBError)
    def handle_kb_error(exc: KBError):
        if exc.status >= 500:
            log.error("%s: %s", exc.__class__.__name__, exc.message)
        extra = {"param": exc.param} if getattr(exc, "param", None) else {}
        # a writer previewing with `make dev` sees which lines break a guide; readers see the plain message
        problems = getattr(exc, "problems", None) if current_app.debug else None
        details = tuple(p.format() for p in problems or ())[:5]
        return error_response(exc.status, exc.message, title=exc.title, details=details, **extra)

    @app.errorhandler(HTTPException)
    def handle_http(exc: HTTPException):
        messages = {404: "There is no page at this address.", 405: "That method is not allowed here."}
        return error_response(exc.code or 500, messages.get(exc.code, exc.description or exc.name))

    @app.errorhandler(ConnectionResetError)
    def handle_client_stalled(exc: ConnectionResetError):
        # what reading the request body raises when gunicorn.conf.py gives up on a client that
        # stopped sending it (KB_CLIENT_TIMEOUT), or the client hung up
        log.info("client stopped sending its request on %s: %s", request.path, exc)
        return error_response(408, "Your browser stopped sending the request before it was complete; please try again.")

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        log.exception("unexpected error on %s", request.path)
        return error_response(500, "Something went wrong on our side; it has been logged. Please try again.")

    @app.after_request
    def headers(resp):
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Permissions-Policy"] = "interest-cohort=()"
        # gunicorn sends its own versionless "Server: gunicorn"; other servers (Werkzeug's) would
        # announce product and Python versions, so the app names itself instead
        if not request.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn"):
            resp.headers["Server"] = "theyearabove"
        location = resp.headers.get("Location")
        if location:
            resp.headers["Location"] = same_site_location(location)
        return resp

    @app.template_filter("long_date")
    def long_date(value) -> str:
        """2026-11-24 -> 24 November 2026 (dates as people write them in the UK)."""
        try:
            d = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        except ValueError:
            return str(value)
        return f"{d.day} {d:%B %Y}"

    @app.template_filter("safe_snippet")
    def safe_snippet(value: str) -> Markup:
        # snippets are built escaped by kb.search.present.make_snippet; only <mark> is added there
        return Markup(value)
