"""benchmarks/bench.py runs end to end on a tiny corpus (structure only: timings are never asserted)."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import numpy as np
import pytest

from app import create_app
from benchmarks import bench
from benchmarks.serving import Live, free_port, http_get, threaded_server
from kb.index.build import build_index
from tests.conftest import FIXTURE_CONTENT
from tests.fakes import HashEmbedder

ABSTRACTS = [
    (
        "101",
        "Statins and muscle pain",
        "Muscle pain is reported by patients taking statins. In blinded trials the rate was similar to placebo. "
        "Most symptoms resolved.",
    ),
    (
        "102",
        "Sleep after night shifts",
        "Junior doctors slept less after night shifts. Recovery took two days. Naps before the shift helped.",
    ),
    (
        "103",
        "Hand hygiene on wards",
        "Alcohol rub before and after patient contact cut infections. Compliance rose with feedback.",
    ),
]


@pytest.fixture
def scifact(tmp_path):
    folder = tmp_path / "scifact"
    folder.mkdir()
    with open(folder / "corpus.jsonl", "w") as fh:
        for i in range(12):
            for _id, title, text in ABSTRACTS:
                fh.write(
                    json.dumps({"_id": f"{_id}{i}", "title": title, "text": f"{text} Cohort {i}.", "metadata": {}})
                    + "\n"
                )
    with open(folder / "queries.jsonl", "w") as fh:
        for i, claim in enumerate(
            ["Statins cause muscle pain.", "Naps help night shift workers.", "Hand rub lowers infection."]
        ):
            fh.write(json.dumps({"_id": str(i), "text": claim, "metadata": {}}) + "\n")
    return folder


def test_make_corpus_is_deterministic_and_sized(scifact):
    embedder = HashEmbedder()
    guides, _ = bench.real_chunks(FIXTURE_CONTENT)
    sci = bench.scifact_passages(scifact)
    gv = embedder.encode([c.embed_text for c in guides])
    sv = embedder.encode([c.embed_text for c in sci[:10]])
    a = bench.make_corpus(100, guides, gv, sci, sv)
    b = bench.make_corpus(100, guides, gv, sci, sv)
    assert len(a.chunks) == 100 and a.vectors.shape == (100, embedder.dimension)
    assert [c.id for c in a.chunks] == [c.id for c in b.chunks] and np.array_equal(a.vectors, b.vectors)
    assert len({c.id for c in a.chunks}) == 100  # variants get their own ids
    assert np.allclose(np.linalg.norm(a.vectors, axis=1), 1.0, atol=1e-5)
    assert a.real_vectors == len(guides) + 10
    assert "sentence-rotated variants" in a.recipe
    assert bench.rotate_sentences("One. Two. Three.", 1) == "Two. Three. One."


def test_run_prints_every_section_on_a_tiny_corpus(tmp_path, scifact):
    args = bench.parse_args(
        [
            "--quick",
            "--sizes",
            "60,150",
            "--queries",
            "8",
            "--content",
            str(FIXTURE_CONTENT),
            "--scifact",
            str(scifact),
            "--cache",
            "",
            "--only",
            "build,incremental,queries",
        ]
    )
    lines: list[str] = []
    results = bench.run(args, embedder=HashEmbedder(), log=lines.append)
    assert results["build"]["pairs"] and results["build"]["chunks"] > 0
    assert results["incremental"]["runs"][0]["embedded"] >= 1
    assert [r["size"] for r in results["queries"]] == [60, 150]
    for r in results["queries"]:
        assert set(r["modes"]) == {"keyword", "semantic", "hybrid"}
        assert r["modes"]["hybrid"]["cold"]["n"] == 8 and r["modes"]["hybrid"]["cold"]["p50"] > 0
    text = bench.render(results)
    for heading in ("### Targets", "### Query latency", "### Build", "Incremental rebuild"):
        assert heading in text
    assert "| 150 | hybrid |" in text and "| 60 | keyword |" in text


def test_write_doc_keeps_other_sections(tmp_path):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n## Relevance\n\nnDCG figures.\n\n## Performance\n\nHand-written notes.\n")
    bench.write_doc("first figures\n", doc)
    bench.write_doc("second figures\n", doc)
    text = doc.read_text()
    assert "nDCG figures." in text and "Hand-written notes." in text
    assert "second figures" in text and "first figures" not in text
    assert text.count(bench.START) == 1


def test_load_test_against_a_live_server(tmp_path):
    embedder = HashEmbedder()
    index = tmp_path / "index"
    build_index(FIXTURE_CONTENT, index, embedder)
    app = create_app(
        {"TESTING": True, "KB_CONTENT_DIR": str(FIXTURE_CONTENT), "KB_INDEX_DIR": str(index)}, embedder=embedder
    )
    with threaded_server(app) as base:
        port = urlsplit(base).port
        queries = bench.http_queries(bench.guide_queries(bench.real_chunks(FIXTURE_CONTENT)[0]))
        out = bench.load_test("127.0.0.1", port, queries, clients=3, requests_per_client=4)
        assert out["requests"] == 12 and out["errors"] == 0 and out["throughput"] > 0
        paused = bench.load_test("127.0.0.1", port, queries, clients=2, requests_per_client=2, pause=0.01)
        assert paused["pause_ms"] == 10 and paused["errors"] == 0


def test_serving_helpers_reach_a_threaded_server(tmp_path):
    app = create_app({"TESTING": True, "KB_CONTENT_DIR": str(FIXTURE_CONTENT), "KB_INDEX_DIR": str(tmp_path / "none")})
    with threaded_server(app) as base:
        port = urlsplit(base).port
        assert Live(base, None).port == port
        status, body = http_get("127.0.0.1", port, "/api/guides", headers={"Accept": "application/json"})
        assert status == 200 and json.loads(body)["guides"]
    with socket.socket() as s:  # a free port is one that can be bound now
        s.bind(("127.0.0.1", free_port()))
