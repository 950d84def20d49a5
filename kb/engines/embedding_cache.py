"""The embedding cache: passage vectors keyed by (model, text hash), kept beside the index generations.

A build looks every chunk up here first and encodes only the misses, so editing one section of
one guide encodes one passage. The cache is one .npz file per model under `index/cache/`,
replaced atomically (write, fsync, rename): a build killed while saving leaves the previous file.
A missing, unreadable or mismatched cache is never an error; the build just encodes more.
The validator's near-duplicate check keeps its section vectors in a cache of its own kind
(`index/.check-cache/`), so neither ages out the other's entries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CACHE_DIR = "cache"
CACHE_FORMAT = 1
# An entry no build has used for this many builds is dropped (edits reverted soon after are still free).
KEEP_UNUSED_BUILDS = 5


def cache_name(model: str) -> str:
    """The cache file's name for `model`: embeddings-<readable name>-<hash>.npz."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model)[-60:]
    digest = hashlib.sha256(model.encode("utf-8")).hexdigest()[:10]
    return f"embeddings-{safe}-{digest}.npz"


def cache_path(index_dir: Path | str, model: str) -> Path:
    """Where a build's cache for `model` lives: index/cache/embeddings-<readable name>-<hash>.npz."""
    return Path(index_dir) / CACHE_DIR / cache_name(model)


class EmbeddingCache:
    """Vectors of one model keyed by the sha256 of the text the encoder saw.

    Attributes:
        model: Model name the vectors came from.
        dimension: Vector width, or 0 for an empty cache.
    """

    def __init__(
        self,
        path: Path,
        model: str,
        keys: list[str] | None = None,
        vectors: np.ndarray | None = None,
        ages: np.ndarray | None = None,
    ):
        self.path = path
        self.model = model
        keys = keys or []
        self._row = {k: i for i, k in enumerate(keys)}
        self._keys = list(keys)
        self._vectors = vectors if vectors is not None else np.zeros((0, 0), dtype=np.float32)
        self._ages = ages if ages is not None else np.zeros(len(keys), dtype=np.int32)
        self.dimension = int(self._vectors.shape[1]) if len(keys) else 0

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: str) -> bool:
        return key in self._row

    def get(self, key: str) -> np.ndarray | None:
        row = self._row.get(key)
        return None if row is None else self._vectors[row]

    @classmethod
    def load(cls, index_dir: Path | str, model: str) -> EmbeddingCache:
        """A build's cache for `model`, or an empty one when it is missing or unusable (with a warning)."""
        return cls.load_file(cache_path(index_dir, model), model)

    @classmethod
    def load_file(cls, path: Path, model: str) -> EmbeddingCache:
        """The cache for `model` stored at `path`, or an empty one when it is missing or unusable (with a warning)."""
        if not path.exists():
            return cls(path, model)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                keys = [str(k) for k in data["keys"]]
                vectors = np.ascontiguousarray(data["vectors"], dtype=np.float32)
                ages = np.asarray(data["ages"], dtype=np.int32)
            if meta.get("format") != CACHE_FORMAT or meta.get("model") != model:
                raise ValueError(f"cache is for {meta.get('model')!r} format {meta.get('format')!r}")
            if vectors.ndim != 2 or len(keys) != len(vectors) or len(ages) != len(keys) or len(set(keys)) != len(keys):
                raise ValueError("cache arrays disagree in length")
            if len(keys) and not np.all(np.isfinite(vectors)):
                raise ValueError("cache holds non-finite numbers")
        except Exception as exc:  # any damage: start afresh, the build re-encodes what it needs
            log.warning("embedding cache %s is unusable (%s); it will be rebuilt", path, exc)
            return cls(path, model)
        return cls(path, model, keys, vectors, ages)

    def updated(self, used: dict[str, np.ndarray]) -> EmbeddingCache:
        """A new cache holding `used` (this build's vectors, age 0) and recent unused entries (age + 1)."""
        keys = list(used)
        rows = [used[k] for k in keys]
        ages = [0] * len(keys)
        dim = len(rows[0]) if rows else self.dimension
        for key, row in self._row.items():
            if key in used or self._ages[row] + 1 > KEEP_UNUSED_BUILDS or self.dimension != dim:
                continue
            keys.append(key)
            rows.append(self._vectors[row])
            ages.append(int(self._ages[row]) + 1)
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(keys), dim)
        return EmbeddingCache(self.path, self.model, keys, vectors, np.asarray(ages, dtype=np.int32))

    def save(self) -> None:
        """Write atomically: a temporary file beside the cache, fsync, rename over it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".tmp-{os.getpid()}-{self.path.name}")
        meta = json.dumps(
            {"format": CACHE_FORMAT, "model": self.model, "dimension": self.dimension, "entries": len(self)}
        )
        try:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    meta=np.array(meta),
                    keys=np.array(self._keys, dtype="U64"),
                    vectors=self._vectors,
                    ages=self._ages,
                )
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
