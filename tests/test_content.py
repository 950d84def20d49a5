"""kb.content.guide: front matter schema, line numbers, every problem reported at once."""

import datetime as dt

import pytest

from kb.content.guide import load_guides, load_guides_strict
from kb.errors import ContentError
from tests.conftest import FIXTURE_CONTENT, MALFORMED

GOOD_FM = """---
title: "A title"
summary: "A summary."
category: psa
tags: [psa]
authors: ["F1 doctor"]
last_reviewed: 2026-11-01
applies_to: evergreen
sources:
  - title: "PSA"
    url: "https://www.prescribingsafetyassessment.ac.uk/"
---

Intro.

## A question?

Answer.
"""


def write(content_dir, name, text, category="psa"):
    path = content_dir / category / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_fixture_guides_load_cleanly():
    guides, problems = load_guides(FIXTURE_CONTENT)
    assert {g.slug for g in guides} >= {"psa-exam-format", "psa-resits", "preference-informed-allocation"}
    assert [p for p in problems if p.level == "error"] == []
    g = next(g for g in guides if g.slug == "psa-exam-format")
    assert g.category == "psa" and g.tags == ("psa", "exams", "prescribing")
    assert g.last_reviewed == dt.date(2026, 11, 1)
    assert g.sources[0].url.startswith("https://")


def test_malformed_folder_reports_every_problem_with_lines():
    with pytest.raises(ContentError) as info:
        load_guides_strict(MALFORMED)
    lines = [p.format() for p in info.value.problems]
    text = "\n".join(lines)
    assert "bad-date.md:7:1: error: 'last_reviewed' must be an ISO date" in text
    assert "no-title.md:1:1: error: missing required field 'title'" in text
    assert "no-title.md:3:1: error: unknown category 'wizardry'" in text
    assert "no-title.md:7:1: error: 'applies_to' must be 'evergreen' or a cycle like FP2027" in text
    assert "bad-yaml.md:3:10: error: front matter is not valid YAML" in text  # where the [ opened
    assert all("(fix: " in line for line in lines)


@pytest.mark.parametrize(
    "change, expected",
    [
        (("tags: [psa]", "tags: [psa, nonsense]"), "unknown tag 'nonsense'"),
        (("category: psa", "category: sjt"), "does not match the folder 'psa'"),
        (("last_reviewed: 2026-11-01", "last_reviewed: 2999-01-01"), "is in the future"),
        (('    url: "https://www.prescribingsafetyassessment.ac.uk/"', '    url: "not a url"'), "invalid URL"),
        (('authors: ["F1 doctor"]', "authors: 5"), "'authors' must be a list"),
        (('title: "A title"\n', ""), "missing required field 'title'"),
    ],
)
def test_schema_errors_name_field(tmp_path, change, expected):
    (tmp_path / "taxonomy.yml").write_text((FIXTURE_CONTENT / "taxonomy.yml").read_text())
    write(tmp_path, "a-guide.md", GOOD_FM.replace(*change))
    guides, problems = load_guides(tmp_path, today=dt.date(2026, 11, 25))
    assert guides == []
    assert any(expected in p.message for p in problems), [p.format() for p in problems]


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"", "file is empty"),
        (b"\xff\xfe\x00bad", "not valid UTF-8"),
        (b"just text, no front matter", "no front matter"),
    ],
)
def test_bad_files_are_reported_not_raised(tmp_path, raw, expected):
    (tmp_path / "taxonomy.yml").write_text((FIXTURE_CONTENT / "taxonomy.yml").read_text())
    (tmp_path / "psa").mkdir()
    (tmp_path / "psa" / "x.md").write_bytes(raw)
    guides, problems = load_guides(tmp_path)
    assert guides == [] and any(expected in p.message for p in problems)


def test_bom_is_accepted(tmp_path):
    (tmp_path / "taxonomy.yml").write_text((FIXTURE_CONTENT / "taxonomy.yml").read_text())
    (tmp_path / "psa").mkdir()
    (tmp_path / "psa" / "bom-guide.md").write_bytes(b"\xef\xbb\xbf" + GOOD_FM.encode())
    guides, problems = load_guides(tmp_path, today=dt.date(2026, 11, 25))
    assert [g.slug for g in guides] == ["bom-guide"] and not problems


def test_symlink_out_of_content_is_refused(tmp_path):
    outside = tmp_path / "outside.md"
    outside.write_text(GOOD_FM)
    content = tmp_path / "content"
    (content / "psa").mkdir(parents=True)
    (content / "taxonomy.yml").write_text((FIXTURE_CONTENT / "taxonomy.yml").read_text())
    (content / "psa" / "linked.md").symlink_to(outside)
    guides, problems = load_guides(content)
    assert guides == [] and any("symlink points outside" in p.message for p in problems)


def test_huge_guide_is_refused(tmp_path):
    (tmp_path / "taxonomy.yml").write_text((FIXTURE_CONTENT / "taxonomy.yml").read_text())
    write(tmp_path, "huge.md", GOOD_FM + ("word " * 1_100_000))
    guides, problems = load_guides(tmp_path)
    assert guides == [] and any("the limit is" in p.message for p in problems)


def test_duplicate_titles_are_errors(tmp_path):
    (tmp_path / "taxonomy.yml").write_text((FIXTURE_CONTENT / "taxonomy.yml").read_text())
    write(tmp_path, "one.md", GOOD_FM)
    write(tmp_path, "two.md", GOOD_FM)
    guides, problems = load_guides(tmp_path, today=dt.date(2026, 11, 25))
    assert len(guides) == 1 and any("already used by" in p.message for p in problems)


def test_cycle_passed():
    guides, _ = load_guides(FIXTURE_CONTENT)
    pia = next(g for g in guides if g.slug == "preference-informed-allocation")
    assert pia.applies_to == "FP2027"
    assert not pia.cycle_passed(dt.date(2026, 11, 25))
    assert pia.cycle_passed(dt.date(2027, 9, 1))
