"""scripts/new_guide.py and kb.tools.scaffold: a correctly named guide with complete front matter and prompts."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kb.content.guide import FM_RE, load_guides
from kb.tools.scaffold import ScaffoldError, new_guide, slugify
from kb.tools.validate import CheckOptions, check_content
from tests.conftest import ROOT, content_today

TODAY = content_today()  # the real guides are current on this day, whatever the machine's calendar says
TITLE = "Surviving your first on-call"

sys.path.insert(0, str(ROOT / "scripts"))
import new_guide as new_guide_script  # noqa: E402


def fill_body(path: Path) -> None:
    """Do what a contributor does: replace every TODO prompt in the body with their own writing."""
    answers = iter(
        [
            "Your first on-call shift feels like a leap. This guide is for final-year students and new F1s who "
            "want to know what the night involves.",
            "## What actually happens on an F1 on-call shift?",
            "You hold the bleep for wards you may never have worked on. Most calls are jobs: fluid charts, drug "
            "charts, cannulas and reviewing "
            "patients whose observations have changed. Write every job down with the ward, bed and time, and see "
            "the sickest patient first.",
            "## Who do I call when I am out of my depth?",
            "Call your registrar early. Nobody expects an F1 to manage a deteriorating patient alone, and "
            "seniors would much rather hear from "
            "you at two in the morning than find out at handover. Save the outreach team's number before the "
            "shift starts.",
            "Eat a proper meal before you start, take your breaks when the bleep is quiet, and keep a list of "
            "the jobs you have handed over.",
            "Your trust's induction pages and rota documents explain local on-call arrangements; ask the rota "
            "coordinator which apply to you.",
        ]
    )
    text = path.read_text(encoding="utf-8")
    m = FM_RE.match(text)
    head, body = text[: m.end()], text[m.end() :]
    body = "\n".join(next(answers) if "TODO" in line else line for line in body.split("\n"))
    path.write_text(head + body, encoding="utf-8")


@pytest.fixture
def real_copy(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("KB_TODAY", TODAY.isoformat())  # a copy of the real guides is judged on their day
    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    return content


@pytest.mark.parametrize(
    "title, slug",
    [
        (TITLE, "surviving-your-first-on-call"),
        ("What's the PSA, and why?", "whats-the-psa-and-why"),
        ("Café & résumé: tips", "cafe-resume-tips"),
        ("  F1   rotas  ", "f1-rotas"),
    ],
)
def test_slugify(title, slug):
    assert slugify(title) == slug


def test_slugify_keeps_long_titles_short_and_whole_words():
    slug = slugify("How do I " + "really " * 20 + "prepare?")
    assert len(slug) <= 60 and not slug.endswith("-") and slug.startswith("how-do-i-really")


def test_new_guide_writes_complete_front_matter_and_prompts(real_copy):
    guide = new_guide(real_copy, TITLE, "placements", today=TODAY)
    assert guide.path == real_copy / "placements" / "surviving-your-first-on-call.md"
    meta = yaml.safe_load(FM_RE.match(guide.text).group(1))
    assert meta["title"] == TITLE and meta["category"] == "placements"
    assert meta["last_reviewed"] == TODAY and meta["applies_to"] == "evergreen"
    assert meta["authors"] == ["Medical student"] and meta["summary"]
    assert len(meta["tags"]) == 3 and "placements" in meta["tags"]  # the category's most used tags
    assert meta["sources"] and all(s["url"].startswith("https://") for s in meta["sources"])
    assert "Suggested from other placements guides" in guide.text
    assert "## What do people wish they had known?" in guide.text
    # the front matter alone is already valid: only the body's prompts stand in the way
    guides, problems = load_guides(real_copy, TODAY)
    assert any(g.slug == guide.slug for g in guides)
    assert [p for p in problems if p.level == "error"] == []
    report = check_content(real_copy, paths=[guide.path], options=CheckOptions(today=TODAY, duplicates=False))
    codes = {p.code for p in report.problems}
    assert codes == {"structure.placeholder"} and report.exit_code == 1
    assert min(p.line for p in report.problems) > guide.text[: FM_RE.match(guide.text).end()].count("\n")


def test_filled_in_guide_passes_the_checker(real_copy):
    guide = new_guide(real_copy, TITLE, "placements", today=TODAY)
    fill_body(guide.path)
    report = check_content(real_copy, options=CheckOptions(today=TODAY, duplicates=False))
    assert [p.format() for p in report.problems] == [] and report.exit_code == 0


def test_explicit_values_are_used(real_copy):
    guide = new_guide(
        real_copy,
        "When do FP2027 applications open?",
        "applications",
        tags=["applications", "dates"],
        summary="When the FP2027 window opens and closes.",
        authors=["F1 doctor"],
        applies_to="FP2027",
        sources=[
            (
                "UKFPO: UKFP 2027 eligibility",
                "https://foundationprogramme.nhs.uk/ukfp-2027-eligibility-applications-what-happens-next/",
            )
        ],
        today=TODAY,
    )
    meta = yaml.safe_load(FM_RE.match(guide.text).group(1))
    assert guide.slug == "when-do-fp2027-applications-open"
    assert (
        meta["tags"] == ["applications", "dates"]
        and meta["applies_to"] == "FP2027"
        and meta["authors"] == ["F1 doctor"]
    )
    assert meta["sources"] == [
        {
            "title": "UKFPO: UKFP 2027 eligibility",
            "url": "https://foundationprogramme.nhs.uk/ukfp-2027-eligibility-applications-what-happens-next/",
        }
    ]
    assert "Suggested from" not in guide.text


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"category": "wizardry"}, "unknown category 'wizardry'; use one of: psa"),
        ({"tags": ["nonsense"]}, "unknown tag(s) nonsense"),
        ({"title": "   "}, "the title is empty"),
        ({"title": "???"}, "cannot make a file name"),
        ({"title": "x" * 121}, "keep it to 120"),
        ({"applies_to": "2027"}, "applies_to must be 'evergreen' or a cycle like FP2027"),
        ({"sources": [("Page", "http://example.org")]}, "must be a full https:// address"),
        (
            {"sources": [("BMA", "https://www.bma.org.uk/")]},
            "'https://www.bma.org.uk/' is a home page; give the address of the page you checked",
        ),
        ({"title": "Ward rounds", "slug": "ward-rounds"}, "a guide called 'ward-rounds' already exists"),
        ({"title": "Common PSA mistakes and how to avoid them"}, "already used by"),
    ],
)
def test_bad_requests_are_refused_with_a_clear_message(real_copy, kwargs, message):
    args = {"title": TITLE, "category": "placements", **kwargs}
    with pytest.raises(ScaffoldError) as info:
        new_guide(real_copy, args.pop("title"), args.pop("category"), today=TODAY, **args)
    assert message in info.value.message
    assert not (real_copy / "placements" / "surviving-your-first-on-call.md").exists()


def test_missing_template_is_a_clear_error(real_copy):
    (real_copy / "_template.md").unlink()
    with pytest.raises(ScaffoldError, match="template .* is missing"):
        new_guide(real_copy, TITLE, "placements", today=TODAY)


def test_script_refuses_to_overwrite_unless_forced(real_copy):
    runner = CliRunner()
    args = [TITLE, "--category", "placements", "--content", str(real_copy)]
    first = runner.invoke(new_guide_script.main, args)
    assert first.exit_code == 0 and "Wrote " in first.output and "surviving-your-first-on-call.md" in first.output
    assert "/guides/surviving-your-first-on-call" in first.output
    again = runner.invoke(new_guide_script.main, args)
    assert again.exit_code == 1 and "already exists" in again.output
    forced = runner.invoke(
        new_guide_script.main,
        [
            *args,
            "--force",
            "--tag",
            "f1",
            "--source",
            "BMA: rota checker | https://www.bma.org.uk/pay-and-contracts/rotas-and-working-patterns/rota-checker",
        ],
    )
    assert forced.exit_code == 0
    meta = yaml.safe_load(
        FM_RE.match((real_copy / "placements" / "surviving-your-first-on-call.md").read_text()).group(1)
    )
    assert meta["tags"] == ["f1"] and meta["sources"] == [
        {
            "title": "BMA: rota checker",
            "url": "https://www.bma.org.uk/pay-and-contracts/rotas-and-working-patterns/rota-checker",
        }
    ]


def test_script_rejects_a_badly_written_source(real_copy):
    result = CliRunner().invoke(
        new_guide_script.main,
        [TITLE, "--category", "placements", "--content", str(real_copy), "--source", "https://x.org"],
    )
    assert result.exit_code == 2 and "Page title | https://" in result.output


@pytest.mark.slow
def test_must_show_scaffolded_guide_is_accepted_once_its_body_is_filled_in(real_copy, tmp_path_factory):
    """The exact command from the issue, then the validator with the real model (near-duplicates included)."""
    # "today" reaches both scripts one way only: KB_TODAY (neither is given --today)
    env = {
        **os.environ,
        "KB_TODAY": TODAY.isoformat(),
        "KB_CONTENT_DIR": str(real_copy),
        "KB_INDEX_DIR": str(tmp_path_factory.getbasetemp() / "check-cache-index"),
    }
    made = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "new_guide.py"), TITLE, "--category", "placements"],
        cwd=real_copy.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("Wrote content/placements/surviving-your-first-on-call.md")
    path = real_copy / "placements" / "surviving-your-first-on-call.md"
    assert f"last_reviewed: {TODAY.isoformat()}" in path.read_text(encoding="utf-8")

    def validate():
        return subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "validate_content.py")],
            cwd=real_copy.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )

    before = validate()
    assert before.returncode == 1
    assert all(
        "surviving-your-first-on-call.md" in line and "TODO" in line
        for line in before.stdout.splitlines()
        if re.match(r"^\S+:\d+:\d+: ", line)
    )
    fill_body(path)
    after = validate()
    assert after.returncode == 0, after.stdout + after.stderr
    assert re.search(r"^Checked \d+ guides: 0 error\(s\), 0 warning\(s\)", after.stdout, re.M), after.stdout


# ---- "today" is injected: the scaffold-then-validate path on chosen days ------------------------
def test_scaffold_then_validate_a_year_ahead(real_copy, monkeypatch):
    """A guide started a year from now is dated that day, and the checker accepts it: nothing is "in the future"."""
    day = dt.date(2027, 12, 6)
    monkeypatch.setenv("KB_TODAY", day.isoformat())  # neither call is given a date: both read KB_TODAY
    guide = new_guide(real_copy, TITLE, "placements")
    assert yaml.safe_load(FM_RE.match(guide.text).group(1))["last_reviewed"] == day
    fill_body(guide.path)
    report = check_content(real_copy, options=CheckOptions(duplicates=False))
    assert [p.format() for p in report.problems if p.path.endswith(guide.path.name)] == []
    assert report.errors == 0 and report.exit_code == 0
    # a year on, whatever else is reported is the older guides going stale, which is the point of the banner
    assert all(p.code.startswith("stale.") for p in report.problems), [p.format() for p in report.problems]


@pytest.mark.parametrize("day, passed", [(dt.date(2027, 8, 31), False), (dt.date(2027, 9, 1), True)])
def test_scaffold_then_validate_at_the_cycle_boundary(real_copy, monkeypatch, day, passed):
    """An FP2027 guide is current on 31 August 2027 and flagged stale from 1 September 2027, when FP2028 opens."""
    monkeypatch.setenv("KB_TODAY", day.isoformat())
    guide = new_guide(
        real_copy,
        "What should I do while FP2027 allocation runs?",
        "applications",
        applies_to="FP2027",
        sources=[
            (
                "UKFPO: UKFP 2027 eligibility",
                "https://foundationprogramme.nhs.uk/ukfp-2027-eligibility-applications-what-happens-next/",
            )
        ],
    )
    fill_body(guide.path)
    report = check_content(real_copy, paths=[guide.path], options=CheckOptions(duplicates=False))
    assert [p.code for p in report.problems] == (["stale.cycle"] if passed else []), [
        p.format() for p in report.problems
    ]
    assert report.exit_code == 0  # a warning, not an error
    strict = check_content(real_copy, paths=[guide.path], options=CheckOptions(duplicates=False, strict=True))
    assert strict.exit_code == (1 if passed else 0)
