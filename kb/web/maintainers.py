"""The maintainers' report page: `flask kb report` in the browser, behind a password.

The page exists only when KB_MAINTAINER_TOKEN is set (otherwise it is a 404, like any page that is not
there). It asks for HTTP Basic credentials: any user name, the token as the password, compared in constant
time. Failed attempts are limited per client. Nothing here identifies a reader: the report is the same
aggregate lists the command prints.
"""

from __future__ import annotations

import hmac

from flask import current_app, render_template, request

from kb.errors import KBError, NotFoundError, StoreError
from kb.web import bp, error_response, kb, whole_number
from kb.web.analytics import RateLimited, RateLimiter, analytics

REALM = "The Year Above maintainers"
DEFAULT_DAYS = 30
ROWS = 50  # rows per list on the page
FAILED_LOGINS = 10  # wrong passwords per client per window
FAILED_WINDOW = 900.0  # seconds


class NeedsLogin(KBError):
    """No password, or the wrong one, for the maintainers' page."""

    status = 401
    title = "Maintainers only"


class ReportUnavailable(StoreError):
    """The analytics database could not be read for the report."""

    title = "The report can't be shown right now"


def _check_password(token: str) -> None:
    """Raise NeedsLogin unless the request carries the token as its Basic password; RateLimited after repeats."""
    auth = request.authorization
    given = (auth.password or "") if auth is not None and auth.type == "basic" else ""
    if given and hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
        return
    if given:  # only wrong passwords count: the browser's first, credential-less request is not an attempt
        wait = current_app.extensions["kb_maintainer_logins"].hit(request.remote_addr or "")
        if wait:
            raise RateLimited(f"too many wrong passwords; try again in {wait} seconds", wait)
    raise NeedsLogin("this page is for the site's maintainers: sign in with the maintainers' password")


@bp.get("/maintainers/report")
def maintainers_report():
    """What students search for and do not find, most asked first, with the command that starts each missing guide."""
    token = kb().settings["KB_MAINTAINER_TOKEN"]
    if not token:
        raise NotFoundError("there is no page at this address")
    _check_password(token)
    days = whole_number(request.args.get("days", str(DEFAULT_DAYS)), "days", 1, 3650)
    store = analytics().store
    try:
        report = kb().search_report(store, days=days, limit=ROWS)
    except StoreError as exc:
        current_app.logger.error("maintainers' report: %s", exc.message)
        raise ReportUnavailable("the analytics database cannot be read just now; the server log says why") from exc
    page = render_template("maintainers.html", r=report, days=days, retention=store.retention_days)
    return page, 200, {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow"}


def init_app(app) -> None:
    app.extensions["kb_maintainer_logins"] = RateLimiter(FAILED_LOGINS, FAILED_WINDOW)

    @app.errorhandler(NeedsLogin)
    def _needs_login(exc: NeedsLogin):
        resp = app.make_response(error_response(exc.status, exc.message, exc.title))
        resp.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
        resp.headers["Cache-Control"] = "no-store"
        return resp
