"""Today's date, one way in: the real clock unless KB_TODAY pins a day (previews, tests, "what will be stale by
then?")."""

from __future__ import annotations

import datetime as dt
import os

from kb.errors import ConfigError

ENV = "KB_TODAY"


def parse_day(value: str | dt.date | None) -> dt.date | None:
    """Read a pinned day: a date, an ISO `YYYY-MM-DD` string, or empty/None for "use the real clock".

    Raises:
        ConfigError: the text is not a real ISO date.
    """
    if value is None or isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{ENV}={text!r}: expected a real date as YYYY-MM-DD, or empty for the real clock") from None


def _pin(pinned: str | dt.date | None) -> dt.date | None:
    return parse_day(pinned) or parse_day(os.environ.get(ENV))


def today(pinned: str | dt.date | None = None) -> dt.date:
    """The day every date rule is judged on.

    Args:
        pinned: An explicit day (a `--today` option or the KB_TODAY setting); when None or
            empty, the KB_TODAY environment variable, and failing that the machine's clock.
    """
    return _pin(pinned) or dt.date.today()


def now(pinned: str | dt.date | None = None) -> dt.datetime:
    """The current moment as naive UTC, moved onto the pinned day when one is set (the time of day keeps running).

    Retention windows and report periods use this, so a pinned day moves them with it.
    """
    real = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    day = _pin(pinned)
    return real if day is None else real + (day - real.date())
