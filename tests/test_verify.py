"""kb.tools.verify, `flask kb verify` and scripts/verify_index.py: what is checked and what to run."""

import json
import subprocess
import sys

import numpy as np
import pytest

from kb.index.build import build_index
from kb.index.generation import current_path
from kb.tools.verify import verify_index
from tests.conftest import ROOT

FAKE_MODEL = "test/hash-embedder"


@pytest.fixture
def built(content_copy, tmp_path, fake_embedder):
    index = tmp_path / "index"
    build_index(content_copy, index, fake_embedder)
    return content_copy, index


def statuses(v):
    return {c.name: c.status for c in v.checks}


def test_healthy_index(built):
    content, index = built
    v = verify_index(index, content, FAKE_MODEL)
    assert v.healthy and not v.stale and v.exit_code == 0 and v.command == ""
    s = statuses(v)
    assert s["model"] == s["files"] == s["counts"] == s["loads"] == s["cache"] == s["content"] == "ok"
    text = v.format()
    assert "every sha256 checksum matches" in text and "Result: healthy and up to date. Nothing to run." in text


@pytest.mark.parametrize(
    "damage, check",
    [
        (
            lambda gen: gen.joinpath("vectors.npy").write_bytes(
                gen.joinpath("vectors.npy").read_bytes()[:-8] + b"\0" * 8
            ),
            "files",
        ),
        (lambda gen: gen.joinpath("chunks.jsonl").unlink(), "files"),
        (lambda gen: gen.joinpath("manifest.json").write_text("{not json"), "manifest"),
        (
            lambda gen: gen.joinpath("manifest.json").write_text(
                json.dumps(
                    {**json.loads(gen.joinpath("manifest.json").read_text()), "counts": {"guides": 5, "chunks": 3}}
                )
            ),
            "counts",
        ),
    ],
    ids=["altered-vectors", "missing-chunks", "corrupt-manifest", "wrong-counts"],
)
def test_damage_is_named_and_full_rebuild_prescribed(built, damage, check):
    content, index = built
    damage(current_path(index))
    v = verify_index(index, content, FAKE_MODEL)
    assert not v.healthy and v.exit_code == 1
    assert statuses(v)[check] == "fail"
    assert v.command == "python scripts/build_index.py --full" and v.format().endswith(
        "Run: python scripts/build_index.py --full"
    )


def test_other_model_and_missing_index(built, tmp_path):
    content, index = built
    v = verify_index(index, content, "another/model")
    assert statuses(v)["model"] == "fail" and "another/model" in v.format() and v.command.endswith("--full")
    none = verify_index(tmp_path / "nothing", content, FAKE_MODEL)
    assert (
        none.exit_code == 1
        and none.command == "python scripts/build_index.py"
        and "no index has been built" in none.format()
    )


def test_guides_newer_than_the_index_are_listed(built):
    content, index = built
    path = content / "psa" / "psa-resits.md"
    path.write_text(path.read_text() + "\n## New section\n\nText.\n")
    (content / "peer-support" / "study-groups.md").unlink()
    v = verify_index(index, content, FAKE_MODEL)
    assert v.healthy and v.stale and v.exit_code == 2 and v.command == "python scripts/build_index.py"
    line = next(c.detail for c in v.checks if c.name == "content")
    assert "psa/psa-resits.md (edited " in line and "deleted study-groups" in line
    assert "healthy and serving, but behind the content. Run: python scripts/build_index.py" in v.format()


def test_leftovers_and_cache_disagreement_are_warnings(built, fake_embedder):
    content, index = built
    (index / ".tmp-20260101T000000000000Z").mkdir()
    v = verify_index(index, content, FAKE_MODEL)
    assert v.exit_code == 0 and statuses(v)["leftovers"] == "warn" and "interrupted build" in v.format()
    from kb.engines.embedding_cache import EmbeddingCache

    cache = EmbeddingCache.load(index, fake_embedder.name)
    keys = list(cache._row)
    poisoned = {k: np.roll(cache.get(k), 1) for k in keys}
    cache.updated(poisoned).save()
    v = verify_index(index, content, FAKE_MODEL)
    assert statuses(v)["cache"] == "warn" and "--full" in next(c.detail for c in v.checks if c.name == "cache")


def run_verify(content, index, *extra: str) -> subprocess.CompletedProcess:
    """scripts/verify_index.py as a maintainer runs it, on the fake model."""
    command = [sys.executable, "scripts/verify_index.py", "--content", str(content), "--index", str(index)]
    return subprocess.run(
        [*command, "--model", FAKE_MODEL, *extra], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_script_json_and_exit_codes(built):
    content, index = built
    run = run_verify(content, index, "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert (
        data["healthy"]
        and data["exit_code"] == 0
        and {c["name"] for c in data["checks"]} >= {"files", "counts", "model", "content"}
    )
    current_path(index).joinpath("glossary.json").write_text("[]")
    run = run_verify(content, index)
    assert run.returncode == 1 and "checksum mismatch in glossary.json" in run.stdout


@pytest.mark.slow
def test_flask_kb_verify_on_the_real_model_index(runner):
    result = runner.invoke(args=["kb", "verify"])
    assert result.exit_code == 0, result.output
    assert (
        "sentence-transformers/all-MiniLM-L6-v2, as configured" in result.output
        and "384, as the model gives" in result.output
    )
