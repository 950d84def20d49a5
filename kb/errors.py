"""Typed errors raised where bad input is found and mapped to HTTP statuses in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a guide or setting, located as precisely as we can.

    Attributes:
        path: File the problem is in (as given to the loader).
        line: 1-based line number, 0 when unknown.
        col: 1-based column, 0 when unknown.
        level: "error" or "warning".
        message: What is wrong.
        hint: How to fix it.
        code: Short machine-readable identifier, e.g. "front-matter.missing".
    """

    path: str
    line: int
    col: int
    level: str
    message: str
    hint: str = ""
    code: str = ""

    def format(self) -> str:
        """Return `path:line:col: level: message (hint)`."""
        text = f"{self.path}:{self.line}:{self.col}: {self.level}: {self.message}"
        if self.hint:
            text += f" (fix: {self.hint})"
        return text

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "level": self.level,
            "message": self.message,
            "hint": self.hint,
            "code": self.code,
        }


class KBError(Exception):
    """Base class: every error a user may see. `status` is the HTTP status it maps to; `title` heads its page."""

    status = 500
    title: str | None = None  # None: the error page picks a heading by status

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class QueryError(KBError):
    """A search or API parameter is invalid. Names the parameter and what is allowed."""

    status = 400

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class NotFoundError(KBError):
    """An unknown guide, category or tag."""

    status = 404


class ContentError(KBError):
    """One or more guides break the schema; carries every problem found."""

    status = 500

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        errors = [p for p in problems if p.level == "error"]
        super().__init__(f"{len(errors)} content error(s) found; the index was not changed")


class IndexNotBuiltError(KBError):
    """No usable index: missing, partial or corrupted. The message says what to run."""

    status = 503


class IndexMismatchError(KBError):
    """The index was built with another model or format than the one configured."""

    status = 503


class StoreError(KBError):
    """The analytics database could not be reached, read or written; the message says what it answered."""

    status = 503


class ConfigError(KBError):
    """One or more settings are invalid; the message lists every bad key."""

    status = 500


class RenderError(KBError):
    """A guide's Markdown could not be turned into a page: nested too deeply, or over the time budget."""

    status = 503
    title = "This guide can't be shown right now"


class GuideUnavailableError(KBError):
    """A guide's file is there but its latest edit fails the checks, so the site cannot show it until it is fixed."""

    status = 503
    title = "This guide can't be shown right now"

    def __init__(self, message: str, problems: list[Problem]):
        super().__init__(message)
        self.problems = problems
