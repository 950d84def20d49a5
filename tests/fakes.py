"""A deterministic stand-in encoder for fast unit tests (the real model runs in test_search_real)."""

from __future__ import annotations

import hashlib
import re

import numpy as np


class HashEmbedder:
    """Bag-of-words hashed into 64 dimensions: similar words give similar vectors, instantly."""

    name = "test/hash-embedder"
    dimension = 64

    def __init__(self):
        self.calls = 0
        self.encoded = 0

    def encode(self, texts, *, progress=False, batch_size=64):
        self.calls += 1
        self.encoded += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int(hashlib.md5(word.encode()).hexdigest(), 16)
                out[i, h % self.dimension] += 1.0
            norm = np.linalg.norm(out[i])
            out[i] = out[i] / norm if norm else out[i]
            if not norm:
                out[i, 0] = 1.0
        return out

    def encode_query(self, text):
        return self.encode([text])[0]
