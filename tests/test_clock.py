"""kb.clock: the one way the library learns today's date."""

from __future__ import annotations

import datetime as dt

import pytest

from kb import clock
from kb.errors import ConfigError


def test_the_suite_runs_on_a_pinned_day(pinned_today):
    assert clock.today() == pinned_today and clock.now().date() == pinned_today


def test_an_explicit_day_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("KB_TODAY", "2030-01-01")
    assert clock.today("2031-02-03") == dt.date(2031, 2, 3)
    assert clock.today(dt.date(2029, 5, 6)) == dt.date(2029, 5, 6)
    assert clock.today("") == clock.today(None) == dt.date(2030, 1, 1)  # empty setting: fall back to KB_TODAY


def test_now_keeps_the_time_of_day_on_the_pinned_day(monkeypatch):
    monkeypatch.setenv("KB_TODAY", "2030-01-01")
    real = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    moved = clock.now()
    assert moved.date() == dt.date(2030, 1, 1)
    assert abs((moved - real) - (dt.date(2030, 1, 1) - real.date())) < dt.timedelta(seconds=5)


def test_without_a_pin_it_is_the_real_clock(monkeypatch):
    monkeypatch.delenv("KB_TODAY")
    before = dt.date.today()
    assert clock.today() in {before, dt.date.today()}


@pytest.mark.parametrize("value", ["2026-02-30", "next week", "2026-1-5x"])
def test_a_bad_day_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv("KB_TODAY", value)
    with pytest.raises(ConfigError, match="KB_TODAY=.*expected a real date as YYYY-MM-DD"):
        clock.today()
