"""The settings table: every KB_* setting is documented in the README, and bad values are refused together."""

from __future__ import annotations

import re

import pytest

from kb import config
from kb.errors import ConfigError
from tests.conftest import ROOT


def test_every_setting_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = "\n".join(line for line in readme.splitlines() if line.startswith("| `KB_"))
    documented = set(re.findall(r"`(KB_[A-Z_]+)`", rows))
    assert {s.name for s in config.SETTINGS} - documented == set()


@pytest.mark.parametrize("value", ["2027-13-01", "tomorrow", "06/12/2026"])
def test_a_bad_pinned_day_is_a_clear_error(value):
    with pytest.raises(ConfigError) as info:
        config.validate({"KB_TODAY": value, "KB_MAX_LIMIT": 0})
    assert f"KB_TODAY={value!r}: expected a real date as YYYY-MM-DD" in info.value.message
    assert "KB_MAX_LIMIT=0: must be >= 1" in info.value.message  # every bad key at once


def test_an_empty_pinned_day_means_the_real_clock():
    assert config.validate({"KB_TODAY": ""})["KB_TODAY"] == ""
