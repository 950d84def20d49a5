"""kb.tools.validate and scripts/validate_content.py: every check located as path:line:col, scope, formats, CI."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from app import create_app
from kb.cli import check_main
from kb.engines.embedding_cache import EmbeddingCache, cache_name
from kb.tools.validate import CheckOptions, changed_files, check_content, format_report, github_annotation
from tests.conftest import FIXTURE_CONTENT, ROOT, content_today
from tests.fakes import HashEmbedder

TODAY = dt.date(2026, 11, 25)
LINE_RE = re.compile(r"^(?P<path>[^:\s]+\.md):(?P<line>\d+):(?P<col>\d+): (?P<level>error|warning): ")


def front(
    title="A guide",
    category="psa",
    tags="[psa]",
    reviewed="2026-11-01",
    applies="evergreen",
    url="https://www.prescribingsafetyassessment.ac.uk/aboutpsa",
):
    return (
        "---\n"
        f'title: "{title}"\n'
        'summary: "A summary."\n'
        f"category: {category}\n"
        f"tags: {tags}\n"
        'authors: ["F1 doctor"]\n'
        f"last_reviewed: {reviewed}\n"
        f"applies_to: {applies}\n"
        "sources:\n"
        '  - title: "PSA"\n'
        f'    url: "{url}"\n'
        "---\n\n"
    )


GOOD_BODY = (
    "Intro about the Prescribing Safety Assessment.\n\n## What is it?\n\nAn exam.\n\n## When is it?\n\nIn final year.\n"
)


def make_content(root: Path, guides: dict[str, str], glossary: bool = True) -> Path:
    content = root / "content"
    content.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURE_CONTENT / "taxonomy.yml", content / "taxonomy.yml")
    if glossary:
        shutil.copy(FIXTURE_CONTENT / "glossary.yml", content / "glossary.yml")
    for rel, text in guides.items():
        path = content / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return content


def check(content, **kw):
    opts = {"today": TODAY, "duplicates": False, **kw.pop("options", {})}
    return check_content(content, options=CheckOptions(**opts), **kw)


def found(report, code=None, level=None):
    return [p for p in report.problems if (code is None or p.code == code) and (level is None or p.level == level)]


# ---- the real content --------------------------------------------------------------------------
def test_real_content_is_clean_without_the_model():
    report = check(ROOT / "content", options={"today": content_today()})
    assert report.guides >= 45
    assert [p.format() for p in report.problems] == []
    assert report.exit_code == 0


def test_fixture_content_reports_acronyms_missing_from_its_glossary():
    report = check(FIXTURE_CONTENT)
    messages = {p.message for p in found(report, "glossary.missing")}
    assert messages == {"'SJT' is not in the glossary", "'EPM' is not in the glossary"}
    assert report.exit_code == 0  # warnings only


# ---- structure -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, code, line, message",
    [
        ("# Big title\n\nText.\n", "structure.h1", 14, "level-1 heading"),
        ("## A?\n\nText.\n\n#### Deep?\n\nText.\n", "structure.heading-order", 18, "jumps from level 2 to level 4"),
        ("### First?\n\nText.\n", "structure.heading-order", 14, "jumps from level 1 to level 3"),
        ("## A?\n\nText.\n\n### B?\n\nx\n\n#### C?\n\ny\n\n##### D?\n\nz\n", "structure.depth", 26, "level-5 heading"),
        ("## Empty?\n\n## Full?\n\nText.\n", "structure.empty-section", 14, "section 'Empty?' is empty"),
        ("## Only a comment?\n\n<!-- write here -->\n\n## Next?\n\nText.\n", "structure.empty-section", 14, "is empty"),
        ("## Last?\n", "structure.empty-section", 14, "section 'Last?' is empty"),
        ("##\n\nText.\n", "structure.empty-heading", 14, "empty heading"),
        ("Intro.\n\nA heading\n=========\n\nText.\n", "structure.setext", 16, "underlined heading"),
        ("Intro.\n\n## Q?\n\nTODO: write this.\n", "structure.placeholder", 18, "template prompt 'TODO'"),
        ("Intro.\n\n<!-- never closed\n\n## Q?\n\nText.\n", "structure.comment", 16, "unclosed HTML comment"),
    ],
)
def test_structure_errors_are_located(tmp_path, body, code, line, message):
    content = make_content(tmp_path, {"psa/a-guide.md": front() + body})
    report = check(content)
    hits = found(report, code)
    assert hits, [p.format() for p in report.problems]
    assert hits[0].level == "error" and hits[0].line == line and message in hits[0].message
    assert hits[0].hint and report.exit_code == 1


def test_a_section_with_only_subsections_is_not_empty_and_code_is_ignored(tmp_path):
    body = (
        "Intro.\n\n## Parent?\n\n### Child?\n\nText.\n\n"
        "## Code?\n\n```\n# not a heading\nTODO not a prompt\n```\n\nUse `TODO` in code.\n"
    )
    report = check(make_content(tmp_path, {"psa/a-guide.md": front() + body}))
    assert [p.format() for p in report.problems] == []


def test_duplicate_headings_in_one_guide_warn(tmp_path):
    report = check(make_content(tmp_path, {"psa/a-guide.md": front() + "## Same?\n\nA.\n\n## Same?\n\nB.\n"}))
    (hit,) = found(report, "structure.duplicate-heading")
    assert hit.level == "warning" and hit.line == 18 and "line 14" in hit.message


def test_placeholders_in_front_matter_are_errors(tmp_path):
    text = front(title="TODO: a title") + GOOD_BODY
    report = check(make_content(tmp_path, {"psa/a-guide.md": text}))
    (hit,) = found(report, "structure.placeholder")
    assert hit.line == 2 and "'title'" in hit.message


def test_impossible_date_is_a_located_error_not_a_crash(tmp_path):
    report = check(make_content(tmp_path, {"psa/a-guide.md": front(reviewed="2026-13-01") + GOOD_BODY}))
    (hit,) = found(report, "front-matter.last_reviewed")
    assert hit.line == 7 and "got '2026-13-01'" in hit.message


# ---- links ---------------------------------------------------------------------------------------
TARGET = (
    front(title="Target", category="placements", tags="[placements]")
    + "Intro.\n\n## How do ward rounds work?\n\nLike this.\n"
)


@pytest.mark.parametrize(
    "link, code, level, message, hint",
    [
        (
            "[x](/guides/targte)",
            "link.guide",
            "error",
            "does not exist: /guides/targte",
            "did you mean /guides/target?",
        ),
        (
            "[x](/guides/target#how-do-ward-round-work)",
            "link.anchor",
            "error",
            "no section '#how-do-ward-round-work'",
            "#how-do-ward-rounds-work",
        ),
        ("[x](#nowhere)", "link.anchor", "error", "no section '#nowhere' in this guide", "#what-is-it"),
        ("[x](/guides/target/)", "link.guide", "error", "ends with '/'", "write /guides/target"),
        ("[x](/categories/wizardry)", "link.category", "error", "unknown category", "psa"),
        ("[x](/tags/nope)", "link.tag", "error", "unknown tag", "taxonomy"),
        ("[x](../placements/target.md)", "link.relative", "error", "markdown file", "write /guides/target"),
        ("[x](javascript:alert(1))", "link.scheme", "error", "'javascript:' links", ""),
        ("[x](/somewhere)", "link.unknown", "error", "does not point at a page", "/guides/<slug>"),
        ("[x][missing]", "link.reference", "error", "[missing] is not defined", ""),
        ("[x]()", "link.empty", "error", "no address", ""),
        ("![](pic.png)", "image.missing", "error", "image file not found: pic.png", ""),
        ("![A chart](https://example.org/a.png)", "image.external", "warning", "blocked", ""),
        (
            "[x](http://www.prescribingsafetyassessment.ac.uk/faq)",
            "link.http",
            "error",
            "linked with https://",
            "https://www.prescribingsafetyassessment.ac.uk/faq",
        ),
        ("[x](http://unknown.example.org/)", "link.http", "warning", "insecure link", "https://unknown.example.org/"),
    ],
)
def test_link_problems_point_at_the_address(tmp_path, link, code, level, message, hint):
    body = f"Intro.\n\n## What is it?\n\nSee {link} for more.\n"
    content = make_content(tmp_path, {"psa/a-guide.md": front() + body, "placements/target.md": TARGET})
    report = check(content)
    hits = [p for p in found(report, code) if p.path.endswith("a-guide.md")]
    assert hits, [p.format() for p in report.problems]
    hit = hits[0]
    assert (hit.level, hit.line) == (level, 18)
    assert hit.col >= 5  # on the link, not the start of the line
    assert message in hit.message and hint in hit.hint


def test_good_links_and_images_pass(tmp_path):
    body = (
        "Intro.\n\n## What is it?\n\n"
        "[a](/guides/target) [b](/guides/target#how-do-ward-rounds-work) [c](#what-is-it) [d](/categories/psa) "
        "[e](/tags/psa) [f](/search?q=psa) [g](https://example.org) [h](mailto:a@b.org) [i][ref] <https://example.org/x>\n\n"
        "![A diagram](diagram.png)\n\n[ref]: /guides/target\n"
    )
    content = make_content(tmp_path, {"psa/a-guide.md": front() + body, "placements/target.md": TARGET})
    (content / "psa" / "diagram.png").write_bytes(b"\x89PNG")
    report = check(content)
    assert [p.format() for p in report.problems] == []


def test_http_source_in_front_matter_is_flagged_on_its_line(tmp_path):
    content = make_content(
        tmp_path,
        {
            "psa/a-guide.md": front(url="http://www.prescribingsafetyassessment.ac.uk/") + GOOD_BODY,
            "psa/b-guide.md": front(title="B") + GOOD_BODY,
        },
    )
    (hit,) = [p for p in found(check(content), "link.http") if p.path.endswith("a-guide.md")]
    assert hit.level == "error" and hit.line == 11 and hit.col == 11


def test_removing_a_guide_breaks_links_to_it(tmp_path):
    content = make_content(tmp_path, {"psa/a-guide.md": front() + "Intro.\n\n## Q?\n\nSee [t](/guides/target).\n"})
    (hit,) = found(check(content), "link.guide")
    assert hit.path.endswith("a-guide.md") and hit.line == 18


# ---- glossary ------------------------------------------------------------------------------------
def test_acronyms_missing_from_the_glossary_warn_once_per_guide(tmp_path):
    body = (
        "The PSA and the BNF are in the glossary; PSAs too. The FP2027 cycle is a cycle, the UK is everyday.\n\n"
        "## What is the XYZ?\n\nThe XYZ and XYZs again. Planning Management (MAN) is spelled out. `ABC` is code.\n"
        "[The QRS](https://example.org/QRS) link text counts.\n"
    )
    report = check(make_content(tmp_path, {"psa/a-guide.md": front() + body}))
    hits = found(report, "glossary.missing")
    assert [(h.message, h.line, h.col, h.level) for h in hits] == [
        ("'XYZ' is not in the glossary", 16, 16, "warning"),
        ("'QRS' is not in the glossary", 19, 6, "warning"),
    ]
    assert "content/glossary.yml" in hits[0].hint


# ---- staleness -----------------------------------------------------------------------------------
def test_stale_guides_warn_and_strict_makes_them_errors(tmp_path):
    content = make_content(
        tmp_path,
        {
            "psa/old-cycle.md": front(title="Old", applies="FP2026") + GOOD_BODY,
            "psa/old-review.md": front(title="Older", reviewed="2025-06-01") + GOOD_BODY,
            "psa/fresh.md": front(title="Fresh", applies="FP2027") + GOOD_BODY,
        },
    )
    report = check(content)
    cycle = found(report, "stale.cycle")
    review = found(report, "stale.review")
    assert [(p.path.split("/")[-1], p.line, p.level) for p in cycle] == [("old-cycle.md", 8, "warning")]
    assert [(p.path.split("/")[-1], p.line, p.level) for p in review] == [("old-review.md", 7, "warning")]
    assert "FP2026 cycle has passed" in cycle[0].message and "542 days ago" in review[0].message
    assert report.exit_code == 0
    strict = check(content, options={"strict": True})
    assert {p.level for p in strict.problems if p.code.startswith("stale.")} == {"error"} and strict.exit_code == 1
    shorter = check(content, options={"stale_after_days": 20})
    assert {p.path.split("/")[-1] for p in found(shorter, "stale.review")} == {
        "old-review.md",
        "old-cycle.md",
        "fresh.md",
    }


# ---- sources and dated claims ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "url, refused",
    [
        ("https://www.bma.org.uk/", True),
        ("https://www.bma.org.uk", True),
        ("https://www.gmc-uk.org//", True),
        ("https://foundationprogramme.nhs.uk/?p=28930", False),  # a page id is a page
        ("https://www.gmc-uk.org/registration-and-licensing/join-the-register", False),
    ],
)
def test_a_bare_home_page_source_is_refused_at_its_line(tmp_path, url, refused):
    report = check(make_content(tmp_path, {"psa/a-guide.md": front(url=url) + GOOD_BODY}))
    hits = found(report, "source.home-page")
    if not refused:
        assert hits == [] and report.exit_code == 0
        return
    assert len(hits) == 1 and hits[0].level == "error" and report.exit_code == 1
    assert hits[0].line == 11  # the url: line of the front matter
    assert f"links the home page {url}, not the page that supports the guide" in hits[0].message
    assert "paste its own address" in hits[0].hint


DATED_BODY = """Intro about the Prescribing Safety Assessment.

## When did applications open?

For FP2026 the window opened in October 2025, and the 2025/26 PSA ran until June 2026.
An ISO date like 2026-11-25 is not an academic year, and the 2021/22 cycle is long past.

## How did it work before? A short history

In FP2026 everything was different (September 2025).

### Older still

FP2025 and 2024/25 are history too, and so is FP2026.

## What do I do now?

!!! note "History: the FP2026 round"
    FP2026 opened in September 2025.

    Still inside the note: 2025/26.

Back outside the note: autumn 2026.
"""


def test_cycle_specific_claims_in_an_evergreen_guide_are_warned_at_path_line_col(tmp_path):
    report = check(make_content(tmp_path, {"psa/a-guide.md": front() + DATED_BODY}))
    hits = found(report, "dated.claim")
    lines = (front() + DATED_BODY).split("\n")

    def at(claim: str, occurrence: int = 0) -> tuple[int, int, str]:
        n = [i for i, text in enumerate(lines) if claim in text][occurrence]
        return n + 1, lines[n].index(claim) + 1, claim

    assert [(p.line, p.col, p.message.split("'")[1]) for p in hits] == [
        at("FP2026"),
        at("October 2025"),
        at("2025/26"),
        at("June 2026"),
        at("autumn 2026"),
    ]
    assert hits[0].line == 18 and hits[0].col == 5
    assert all(p.level == "warning" and "in an evergreen guide" in p.message for p in hits)
    assert 'containing "history"' in hits[0].hint and "set applies_to" in hits[0].hint
    assert report.exit_code == 0  # a warning: it prompts the author, it does not block
    line = hits[0].format()
    assert re.match(r"^\S+a-guide\.md:18:5: warning: 'FP2026' is a dated, cycle-specific claim", line)


def test_a_cycle_guide_may_state_its_own_cycle_and_later_ones(tmp_path):
    body = (
        "Intro.\n\n## When?\n\n"
        "FP2027 applications opened in autumn 2026 for 2026/27; FP2028 follows. FP2026 ran in 2025/26.\n"
    )
    report = check(
        make_content(
            tmp_path,
            {"applications/a-guide.md": front(category="applications", tags="[applications]", applies="FP2027") + body},
        )
    )
    assert [p.message.split("'")[1] for p in found(report, "dated.claim")] == ["FP2026", "2025/26"]
    assert "in a guide for FP2027" in found(report, "dated.claim")[0].message


def test_old_claims_are_history_by_themselves(tmp_path):
    """The rule looks at last year on: judged from 2030, FP2026 and October 2025 are plainly past."""
    report = check(
        make_content(tmp_path, {"psa/a-guide.md": front() + DATED_BODY}), options={"today": dt.date(2030, 1, 1)}
    )
    assert found(report, "dated.claim") == []


def test_must_show_an_fp2026_date_added_to_an_evergreen_guide_is_warned(tmp_path):
    """The issue's case, on a copy of the real guides and through the command contributors run."""
    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    guide = content / "placements" / "ward-rounds.md"
    text = guide.read_text(encoding="utf-8")
    assert "applies_to: evergreen" in text
    guide.write_text(text + "\nFor FP2026, the national window closed on 8 October 2025.\n", encoding="utf-8")
    line = text.count("\n") + 2
    result = CliRunner().invoke(
        check_main, ["--content", str(content), "--no-duplicates", "--today", content_today().isoformat(), str(guide)]
    )
    assert result.exit_code == 0, result.output
    assert re.search(
        rf"ward-rounds\.md:{line}:5: warning: 'FP2026' is a dated, cycle-specific claim in an evergreen guide",
        result.output,
    ), result.output
    assert re.search(
        rf"ward-rounds\.md:{line}:\d+: warning: '8 October 2025'|ward-rounds\.md:{line}:\d+: warning: 'October 2025'",
        result.output,
    )


# ---- near-duplicates (fast, with the hashing stand-in encoder) ----------------------------------
SHARED = (
    "Book your shadowing week early because rota coordinators fill induction slots quickly and the trust "
    "needs your registration number, occupational health clearance and bank details before you start."
)


def dup_content(tmp_path):
    original = (
        front(title="Original", reviewed="2026-10-01") + f"Intro.\n\n## How do I prepare for shadowing?\n\n{SHARED}\n"
    )
    copy = (
        front(title="Copy", reviewed="2026-11-20")
        + "Intro.\n\n## Something unrelated?\n\nCompletely different words about pharmacology exams and "
        "calculators here, long enough to compare at all, "
        "with a second sentence about practice papers and timing strategy.\n\n"
        f"## Before day one?\n\n{SHARED}\n"
    )
    return make_content(tmp_path, {"psa/original.md": original, "psa/copy.md": copy})


def test_copied_section_is_reported_once_on_the_newer_guide_naming_the_original(tmp_path):
    content = dup_content(tmp_path)
    report = check(content, options={"duplicates": True}, embedder=HashEmbedder(), cache_dir=tmp_path / "cache")
    (hit,) = found(report, "duplicate.section")
    assert hit.path.endswith("copy.md") and hit.line == 20 and hit.level == "warning"
    assert "section 'Before day one?' closely matches 'How do I prepare for shadowing?'" in hit.message
    assert "psa/original.md (/guides/original#how-do-i-prepare-for-shadowing)" in hit.message


def test_duplicate_threshold_and_cache(tmp_path):
    content = dup_content(tmp_path)
    embedder = HashEmbedder()
    check(content, options={"duplicates": True}, embedder=embedder, cache_dir=tmp_path / "cache")
    first = embedder.encoded
    report = check(content, options={"duplicates": True}, embedder=embedder, cache_dir=tmp_path / "cache")
    assert embedder.encoded == first  # every section came from the cache
    assert "0 embedded" in report.notes[0]
    none = check(content, options={"duplicates": True, "duplicate_threshold": 1.01}, embedder=embedder)
    assert found(none, "duplicate.section") == []


def test_section_vectors_live_in_an_embedding_cache_and_survive_its_damage(tmp_path, caplog):
    content = dup_content(tmp_path)
    embedder = HashEmbedder()
    first = check(content, options={"duplicates": True}, embedder=embedder, cache_dir=tmp_path / "cache")
    cache = EmbeddingCache.load_file(tmp_path / "cache" / cache_name(embedder.name), embedder.name)
    assert len(cache) == embedder.encoded > 0 and cache.dimension == embedder.dimension
    (tmp_path / "cache" / cache_name(embedder.name)).write_bytes(b"truncated")
    again = check(content, options={"duplicates": True}, embedder=embedder, cache_dir=tmp_path / "cache")
    assert embedder.encoded == 2 * len(cache) and "unusable" in caplog.text  # re-embedded, not an error
    (hit,) = found(first, "duplicate.section")
    assert [p.message for p in found(again, "duplicate.section")] == [hit.message]


def test_scoped_check_attributes_duplicates_to_the_guide_in_scope(tmp_path):
    content = dup_content(tmp_path)
    report = check(
        content, paths=[content / "psa" / "original.md"], options={"duplicates": True}, embedder=HashEmbedder()
    )
    (hit,) = found(report, "duplicate.section")
    assert hit.path.endswith("original.md") and "psa/copy.md" in hit.message


# ---- scope: paths and --changed-only ------------------------------------------------------------
def test_paths_limit_the_report(tmp_path):
    content = make_content(
        tmp_path,
        {
            "psa/a-guide.md": front(title="A") + "## XYZ?\n\nText.\n",
            "psa/b-guide.md": front(title="B") + "## QRS?\n\nText.\n",
        },
    )
    report = check(content, paths=[content / "psa" / "a-guide.md"])
    assert {p.path.split("/")[-1] for p in report.problems} == {"a-guide.md"}
    assert report.scope == [str(content / "psa" / "a-guide.md")]
    missing = check(content, paths=[tmp_path / "nope.md"])
    assert found(missing, "file.missing") and missing.exit_code == 1


def git(cwd, *args):
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


@pytest.fixture
def repo(tmp_path):
    """A git repository whose main branch holds two clean guides, on a feature branch."""
    root = tmp_path / "repo"
    content = make_content(
        root,
        {
            "psa/a-guide.md": front(title="A")
            + "Intro.\n\n## Q?\n\nSee [b](/guides/b-guide). The QRS is a warning on main.\n",
            "psa/b-guide.md": front(title="B") + GOOD_BODY,
        },
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "guides")
    git(root, "checkout", "-qb", "feature")
    return root, content


def test_changed_only_reports_warnings_for_changed_guides_and_errors_everywhere(repo):
    root, content = repo
    (content / "psa" / "b-guide.md").unlink()  # breaks a-guide's link
    (content / "psa" / "new-guide.md").write_text(
        front(title="New") + "Intro.\n\n## About the XYZ?\n\nText.\n", encoding="utf-8"
    )
    git(root, "add", "-A")
    git(root, "commit", "-qm", "change")
    changed, shared = changed_files(content, "main")
    assert {p.name for p in changed} == {"b-guide.md", "new-guide.md"} and not shared
    report = check(content, changed=(changed, shared))
    assert [(p.path.split("/")[-1], p.code) for p in report.problems] == [
        ("a-guide.md", "link.guide"),
        ("new-guide.md", "glossary.missing"),
    ]


def test_changed_only_includes_uncommitted_and_untracked_and_taxonomy_widens_scope(repo):
    root, content = repo
    (content / "psa" / "draft.md").write_text(front(title="Draft") + GOOD_BODY, encoding="utf-8")
    changed, shared = changed_files(content, "main")
    assert {p.name for p in changed} == {"draft.md"} and not shared
    (content / "taxonomy.yml").write_text((content / "taxonomy.yml").read_text() + "  - newtag\n", encoding="utf-8")
    changed, shared = changed_files(content, "main")
    assert shared
    assert check(content, changed=(changed, shared)).scope is None


def test_changed_only_without_a_base_falls_back_to_everything(repo, monkeypatch):
    root, content = repo
    monkeypatch.chdir(root)
    result = CliRunner().invoke(
        check_main,
        [
            "--content",
            str(content),
            "--changed-only",
            "--base",
            "no-such-branch",
            "--no-duplicates",
            "--today",
            "2026-11-25",
        ],
    )
    assert result.exit_code == 0
    assert "checking every guide instead" in result.output and "Checked 2 guides" in result.output


# ---- command line and formats --------------------------------------------------------------------
def bad_content(tmp_path):
    return make_content(
        tmp_path, {"psa/a-guide.md": front(category="wizardry") + "## Q?\n\nSee [x](/guides/nowhere).\n"}
    )


def test_cli_text_output_and_exit_status(tmp_path):
    content = bad_content(tmp_path)
    result = CliRunner().invoke(check_main, ["--content", str(content), "--no-duplicates", "--today", "2026-11-25"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if LINE_RE.match(line)]
    assert len(lines) == 2 and all("(fix: " in line for line in lines)
    assert "error(s)" in result.output.splitlines()[-1]
    clean = make_content(tmp_path / "ok", {"psa/a-guide.md": front() + GOOD_BODY})
    ok = CliRunner().invoke(check_main, ["--content", str(clean), "--no-duplicates", "--today", "2026-11-25"])
    assert ok.exit_code == 0 and "0 error(s), 0 warning(s)" in ok.output


def test_cli_json_output(tmp_path):
    content = bad_content(tmp_path)
    result = CliRunner().invoke(
        check_main, ["--content", str(content), "--no-duplicates", "--format", "json", "--today", "2026-11-25"]
    )
    data = json.loads(result.output)
    assert result.exit_code == 1 and data["ok"] is False and data["errors"] == 2
    assert {p["code"] for p in data["problems"]} == {"front-matter.category", "link.guide"}
    assert all({"path", "line", "col", "level", "message", "hint"} <= set(p) for p in data["problems"])


def test_github_annotations_escape_and_locate(tmp_path):
    content = bad_content(tmp_path)
    report = check(content)
    text = format_report(report, "github")
    annotations = [line for line in text.splitlines() if line.startswith("::")]
    assert len(annotations) == 2
    assert re.match(
        r"^::error file=.*a-guide\.md,line=4,col=1,title=front-matter\.category::unknown category 'wizardry'",
        annotations[0],
    )
    from kb.errors import Problem

    tricky = github_annotation(Problem("a,b:c.md", 3, 2, "warning", "50% done\nnext", "", "x"))
    assert tricky == "::warning file=a%2Cb%3Ac.md,line=3,col=2,title=x::50%25 done%0Anext"


def test_flask_kb_check_command(tmp_path):
    content = bad_content(tmp_path)
    app = create_app(
        {"TESTING": True, "KB_CONTENT_DIR": str(content), "KB_INDEX_DIR": str(tmp_path / "index")},
        embedder=HashEmbedder(),
    )
    result = app.test_cli_runner().invoke(args=["kb", "check", "--no-duplicates", "--today", "2026-11-25"])
    assert result.exit_code == 1 and "unknown category 'wizardry'" in result.output


def test_missing_content_folder_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(check_main, ["--content", str(tmp_path / "nowhere"), "--no-duplicates"])
    assert result.exit_code == 1 and "content folder does not exist" in result.output
    assert "Traceback" not in result.output


# ---- the pull request workflow runs the documented commands --------------------------------------
WORKFLOW = ROOT / ".github" / "workflows" / "pull-request.yml"


def workflow_commands() -> list[str]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return [step["run"].strip() for job in data["jobs"].values() for step in job["steps"] if "run" in step]


def test_workflow_triggers_on_content_and_runs_only_documented_commands():
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    triggers = data.get("on") or data.get(True)  # YAML 1.1 reads a bare `on` as true
    assert "content/**" in triggers["pull_request"]["paths"]
    commands = workflow_commands()
    documented = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8") + (ROOT / "Makefile").read_text(
        encoding="utf-8"
    )
    assert ".ci/run" in commands and "make install" in commands
    validator = [c for c in commands if "validate_content.py" in c]
    assert len(validator) == 1 and "--changed-only" in validator[0] and "--format github" in validator[0]
    for command in commands:
        if command.startswith("git config"):
            continue
        assert command.split()[0] in ("make", ".ci/run", ".venv/bin/python"), command
        assert command.replace(
            '"origin/$GITHUB_BASE_REF"', "origin/<target branch>"
        ) in documented or command.startswith("make "), command
    for target in ("install", "test", "check"):
        assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_workflow_validator_command_annotates_a_pull_request(repo):
    """Run the workflow's exact validator command in a repository shaped like a PR checkout."""
    root, content = repo
    for item in ("scripts", "kb", "app.py"):
        src = ROOT / item
        (root / item).symlink_to(src, target_is_directory=src.is_dir())
    (root / ".venv").symlink_to(ROOT / ".venv")
    git(root, "update-ref", "refs/remotes/origin/main", "main")
    (content / "psa" / "b-guide.md").write_text(
        front(title="B", category="wizardry") + GOOD_BODY + "\nThe XYZ.\n", encoding="utf-8"
    )
    git(root, "add", "content")
    git(root, "commit", "-qm", "edit")
    (command,) = [c for c in workflow_commands() if "validate_content.py" in c]
    env = {**os.environ, "GITHUB_BASE_REF": "main", "KB_CONTENT_DIR": str(content), "KB_INDEX_DIR": str(root / "index")}
    run = subprocess.run(
        command + " --no-duplicates", shell=True, cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 1, run.stdout + run.stderr
    annotations = [line for line in run.stdout.splitlines() if line.startswith("::")]
    assert annotations == [
        "::error file=content/psa/b-guide.md,line=4,col=1,title=front-matter.category::unknown category 'wizardry' "
        "(fix: use one of: psa, sjt, applications, ukmla, placements, starting-f1, peer-support)",
        "::warning file=content/psa/b-guide.md,line=24,col=5,title=glossary.missing::'XYZ' is not in the glossary "
        "(fix: add '- term: XYZ' with its expansion and meaning to content/glossary.yml (search expands it, "
        "readers get a tooltip), "
        "or spell it out where it is first used, as in 'Full Name (XYZ)')",
    ]


# ---- must show (real model) -----------------------------------------------------------------------
def run_script(*args, cwd=ROOT, env=None):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "validate_content.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )


@pytest.fixture(scope="session")
def section_cache(tmp_path_factory) -> Path:
    """One cache of real-model section vectors shared by the slow checks of this session."""
    return tmp_path_factory.getbasetemp() / "check-cache-index"


@pytest.mark.slow
def test_real_content_validates_clean_with_the_real_model(section_cache):
    result = run_script("--index", str(section_cache), "--today", content_today().isoformat())
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^Checked \d+ guides: 0 error\(s\), 0 warning\(s\)", result.stdout, re.M), result.stdout
    assert "near-duplicate check: " in result.stderr


@pytest.mark.slow
def test_broken_copy_reports_one_line_per_problem_and_names_the_original(tmp_path, section_cache):
    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)

    def edit(rel, old, new):
        path = content / rel
        text = path.read_text(encoding="utf-8")
        assert old in text, (rel, old)
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    edit("psa/psa-common-pitfalls.md", 'title: "Common PSA mistakes and how to avoid them"\n', "")
    ward = content / "placements" / "ward-rounds.md"
    ward.write_text(
        re.sub(
            r"^last_reviewed: .*$", "last_reviewed: 2026-13-01", ward.read_text(encoding="utf-8"), count=1, flags=re.M
        ),
        encoding="utf-8",
    )
    edit("placements/electives.md", "category: placements", "category: wizardry")
    edit(
        "psa/psa-preparation-plan.md",
        "(/guides/psa-format-and-sections)",
        "(/guides/psa-format-and-sections#how-long-is-the-exam)",
    )
    original = (content / "starting-f1" / "rotas-and-pay-basics.md").read_text(encoding="utf-8")
    section = re.search(r"^## What is a rota\?\n.*?(?=^## )", original, re.S | re.M).group(0)
    (content / "placements" / "surviving-your-first-on-call.md").write_text(
        front(
            title="Surviving your first on-call",
            category="placements",
            tags="[placements, f1]",
            reviewed=content_today().isoformat(),
        )
        + "Your first on-call is a rite of passage.\n\n"
        + section
        + "## Who do I call when I am stuck?\n\nCall your registrar early; nobody expects you to manage alone.\n",
        encoding="utf-8",
    )
    result = run_script(
        "--content", str(content), "--index", str(section_cache), "--today", content_today().isoformat(), cwd=tmp_path
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if LINE_RE.match(line)]
    by_file = {Path(LINE_RE.match(line)["path"]).name: line for line in lines}
    assert len(lines) == 5 == len(by_file), lines
    assert "missing required field 'title'" in by_file["psa-common-pitfalls.md"]
    assert "'last_reviewed' must be an ISO date (YYYY-MM-DD), got '2026-13-01'" in by_file["ward-rounds.md"]
    assert "unknown category 'wizardry'" in by_file["electives.md"]
    assert "no section '#how-long-is-the-exam' in /guides/psa-format-and-sections" in by_file["psa-preparation-plan.md"]
    dup = by_file["surviving-your-first-on-call.md"]
    assert (
        ": warning: section 'What is a rota?' closely matches 'What is a rota?' in "
        "content/starting-f1/rotas-and-pay-basics.md" in dup
    )
    assert "(/guides/rotas-and-pay-basics#what-is-a-rota)" in dup
