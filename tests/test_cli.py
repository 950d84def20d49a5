"""The build script and `flask kb` commands."""

import subprocess
import sys

import pytest

from tests.conftest import FIXTURE_CONTENT, MALFORMED, ROOT
from tests.test_build import tree_digest

pytestmark = pytest.mark.slow


def run(*args):
    return subprocess.run(
        [sys.executable, "scripts/build_index.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_build_script_builds_then_refuses_malformed_without_touching_index(tmp_path):
    index = tmp_path / "x"
    ok = run("--content", str(FIXTURE_CONTENT), "--index", str(index), "--quiet")
    assert ok.returncode == 0, ok.stderr
    assert "5 guides (5 added" in ok.stdout
    before = tree_digest(index)
    bad = run("--content", str(MALFORMED), "--index", str(index), "--quiet")
    assert bad.returncode == 1
    lines = [line for line in bad.stderr.splitlines() if ": error: " in line]
    assert len(lines) >= 5 and all(line.split(":")[1].isdigit() for line in lines)
    assert "existing index was not changed" in bad.stderr
    assert tree_digest(index) == before
    again = run("--content", str(FIXTURE_CONTENT), "--index", str(index), "--if-stale", "--quiet")
    assert again.returncode == 0 and "up to date" in again.stdout


def test_flask_kb_status(runner):
    result = runner.invoke(args=["kb", "status"])
    assert result.exit_code == 0 and "up to date" in result.output
