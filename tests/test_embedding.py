"""kb.engines.embedding: the ONNX query encoder gives the model's own vectors, and search survives without it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from kb.engines.embedding import SentenceTransformerEmbedder
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

QUERIES = [
    "how long is the psa",
    "Can I use the BNF in the Prescribing Safety Assessment?",
    "sjt",
    "what happens if I fail finals and have to resit the UKMLA applied knowledge test",
    "ward round tips for a nervous third-year on their first surgical placement " * 4,  # past the truncation limit
    "naïve café — émigré’s question?",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, real_embedder):
    onnx_dir = tmp_path_factory.mktemp("encoders")
    embedder = SentenceTransformerEmbedder(onnx_dir=onnx_dir)
    embedder._model, embedder._dimension = real_embedder._load(), real_embedder.dimension  # reuse the loaded model
    folder, seconds = embedder.prepare_query_encoder()
    assert folder is not None and (folder / "model.onnx").is_file() and seconds > 0
    return onnx_dir


def test_onnx_queries_match_sentence_transformers(exported, real_embedder):
    fast = SentenceTransformerEmbedder(onnx_dir=exported)
    assert fast.query_backend == "onnx"
    want = real_embedder.encode(QUERIES)
    got = np.stack([fast.encode_query(q) for q in QUERIES])
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert (got * want).sum(axis=1).min() > 0.99999
    assert fast._model is None  # torch never loaded for queries


def test_a_few_passages_go_through_onnx_with_the_same_vectors(exported, real_embedder):
    passages = [
        "Prescribing Safety Assessment > Format\nThe PSA is a two-hour online exam with eight sections. " * 12,
        "Short passage.",
        "Ward rounds > Before the round\nCheck the overnight observations, bloods and the drug chart.",
    ]
    fast = SentenceTransformerEmbedder(onnx_dir=exported)
    got = fast.encode(passages)
    assert fast._model is None
    want = real_embedder.encode(passages)
    assert got.shape == want.shape and (got * want).sum(axis=1).min() > 0.99999


def test_second_prepare_reuses_the_export(exported):
    again = SentenceTransformerEmbedder(onnx_dir=exported)
    folder, seconds = again.prepare_query_encoder()
    assert folder is not None and seconds == 0.0


def test_broken_export_falls_back_to_sentence_transformers(exported, tmp_path, real_embedder):
    folder = SentenceTransformerEmbedder(onnx_dir=exported).onnx_folder()
    broken_dir = tmp_path / "encoders"
    broken = broken_dir / folder.name
    broken.mkdir(parents=True)
    (broken / "meta.json").write_text((folder / "meta.json").read_text())
    (broken / "model.onnx").write_bytes(b"not a model")
    (broken / "tokenizer.json").write_text((folder / "tokenizer.json").read_text())
    embedder = SentenceTransformerEmbedder(onnx_dir=broken_dir)
    embedder._model, embedder._dimension = real_embedder._load(), real_embedder.dimension
    assert embedder.query_backend == "sentence-transformers"
    vector = embedder.encode_query("how long is the psa")
    assert float(vector @ real_embedder.encode(["how long is the psa"])[0]) > 0.99999


def test_disagreeing_export_is_refused(exported, tmp_path, real_embedder):
    folder = SentenceTransformerEmbedder(onnx_dir=exported).onnx_folder()
    copy_dir = tmp_path / "encoders"
    copy = copy_dir / folder.name
    copy.mkdir(parents=True)
    for name in ("model.onnx", "tokenizer.json"):
        (copy / name).write_bytes((folder / name).read_bytes())
    meta = json.loads((folder / "meta.json").read_text())
    meta["probe_vector"] = list(-np.asarray(meta["probe_vector"]))
    (copy / "meta.json").write_text(json.dumps(meta))
    embedder = SentenceTransformerEmbedder(onnx_dir=copy_dir)
    embedder._model, embedder._dimension = real_embedder._load(), real_embedder.dimension
    assert embedder.query_backend == "sentence-transformers"


def test_server_process_answers_queries_without_importing_torch(exported):
    code = (
        "import sys; from kb.engines.embedding import SentenceTransformerEmbedder as E; "
        f"e = E(onnx_dir={str(exported)!r}); v = e.encode_query('psa resit'); "
        "print(e.query_backend, len(v), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["onnx", "384", "False"]
