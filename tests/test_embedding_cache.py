"""kb.engines.embedding_cache: vectors keyed by (model, text hash), atomic saves, pruning, damage tolerated."""

import numpy as np

from kb.engines.embedding_cache import KEEP_UNUSED_BUILDS, EmbeddingCache, cache_path


def vec(*values):
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_round_trip_and_model_isolation(tmp_path):
    cache = EmbeddingCache.load(tmp_path, "model-a")
    assert len(cache) == 0
    cache.updated({"h1": vec(1, 0), "h2": vec(0, 1)}).save()
    again = EmbeddingCache.load(tmp_path, "model-a")
    assert len(again) == 2 and again.dimension == 2
    assert np.allclose(again.get("h2"), vec(0, 1)) and again.get("nope") is None
    # another model never sees these vectors
    assert len(EmbeddingCache.load(tmp_path, "model-b")) == 0
    assert cache_path(tmp_path, "model-a") != cache_path(tmp_path, "model-b")
    assert cache_path(tmp_path, "sentence-transformers/all-MiniLM-L6-v2").name.startswith(
        "embeddings-sentence-transformers_all-MiniLM-L6-v2-"
    )


def test_unused_entries_age_out(tmp_path):
    cache = EmbeddingCache.load(tmp_path, "m").updated({"old": vec(1, 0), "kept": vec(0, 1)})
    for _ in range(KEEP_UNUSED_BUILDS):
        cache = cache.updated({"kept": vec(0, 1)})
        assert "old" in cache  # a reverted edit within a few builds is still free
    cache = cache.updated({"kept": vec(0, 1)})
    assert "old" not in cache and "kept" in cache


def test_damaged_or_foreign_cache_is_ignored_not_fatal(tmp_path, caplog):
    path = cache_path(tmp_path, "m")
    EmbeddingCache.load(tmp_path, "m").updated({"h": vec(1, 0)}).save()
    path.write_bytes(path.read_bytes()[:40])  # truncated by a full disk, say
    assert len(EmbeddingCache.load(tmp_path, "m")) == 0
    assert "unusable" in caplog.text
    # a file renamed from another model's cache is refused by its recorded model name
    EmbeddingCache.load(tmp_path, "other").updated({"h": vec(1, 0)}).save()
    cache_path(tmp_path, "other").rename(path)
    assert len(EmbeddingCache.load(tmp_path, "m")) == 0


def test_save_is_atomic(tmp_path, monkeypatch):
    EmbeddingCache.load(tmp_path, "m").updated({"a": vec(1, 0)}).save()
    before = cache_path(tmp_path, "m").read_bytes()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", boom)
    try:
        EmbeddingCache.load(tmp_path, "m").updated({"b": vec(0, 1)}).save()
    except OSError:
        pass
    assert cache_path(tmp_path, "m").read_bytes() == before
    assert not list((tmp_path / "cache").glob(".tmp-*"))
