"""A numpy forward pass of a BERT sentence encoder, so a small incremental build never imports torch.

Importing torch and sentence-transformers costs several seconds before the first passage is
encoded; a rebuild after editing one guide embeds a handful of passages. This module runs the
same model (the same safetensors weights, the same tokenizer.json, mean pooling, L2 norm) with
numpy alone and loads in a fraction of a second. It supports exactly the architecture of
all-MiniLM-L6-v2 (a BERT encoder with absolute positions, GELU, mean pooling, normalisation) and
says so when a model folder is anything else; `BuildEncoder` then uses sentence-transformers.
Its vectors match sentence-transformers' to float32 rounding (tests/test_bert_numpy.py).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path

import numpy as np

from kb.engines.embedding import SentenceTransformerEmbedder, resolve_model

log = logging.getLogger(__name__)

# Up to this many passages a build encodes with numpy (fast start); more go to the full model
# (faster per passage once loaded). Measured crossover on a 2-core machine: docs/BENCHMARKS.md.
SMALL_BATCH = 64


class UnsupportedModel(Exception):
    """The model folder is not a plain BERT mean-pooling sentence encoder."""


def _read_json(path: Path) -> dict | list:
    return json.loads(path.read_text(encoding="utf-8"))


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, below float32 resolution at these magnitudes.
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t
    return np.sign(x) * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * np.float32(1.0 / math.sqrt(2.0))))


class NumpyBertEncoder:
    """all-MiniLM-L6-v2 (and any BERT mean-pooling sentence encoder) in numpy.

    Args:
        folder: A sentence-transformers model folder with model.safetensors and tokenizer.json.

    Raises:
        UnsupportedModel: the folder holds another architecture or lacks those files.
    """

    def __init__(self, folder: Path | str):
        folder = Path(folder)
        self.config = self.check(folder)
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.max_tokens = int(self.config["max_seq_length"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_tokens)
        self.tokenizer.no_padding()
        w = {k: v.astype(np.float32, copy=False) for k, v in load_file(str(folder / "model.safetensors")).items()}
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""
        w = {k[len(prefix) :]: v for k, v in w.items()}
        self.hidden = int(self.config["hidden_size"])
        self.heads = int(self.config["num_attention_heads"])
        self.eps = np.float32(self.config.get("layer_norm_eps", 1e-12))
        self.dimension = self.hidden
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.emb_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(int(self.config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."

            def g(name: str, p: str = p) -> np.ndarray:
                return w[p + name]

            qkv_w = np.ascontiguousarray(
                np.concatenate(
                    [g("attention.self.query.weight"), g("attention.self.key.weight"), g("attention.self.value.weight")]
                ).T
            )
            qkv_b = np.concatenate(
                [g("attention.self.query.bias"), g("attention.self.key.bias"), g("attention.self.value.bias")]
            )
            self.layers.append(
                (
                    qkv_w,
                    qkv_b,
                    np.ascontiguousarray(g("attention.output.dense.weight").T),
                    g("attention.output.dense.bias"),
                    (g("attention.output.LayerNorm.weight"), g("attention.output.LayerNorm.bias")),
                    np.ascontiguousarray(g("intermediate.dense.weight").T),
                    g("intermediate.dense.bias"),
                    np.ascontiguousarray(g("output.dense.weight").T),
                    g("output.dense.bias"),
                    (g("output.LayerNorm.weight"), g("output.LayerNorm.bias")),
                )
            )

    @staticmethod
    def check(folder: Path) -> dict:
        """Return the merged model settings if `folder` is a model this encoder reproduces exactly."""
        try:
            config = _read_json(folder / "config.json")
            modules = _read_json(folder / "modules.json")
            st_config = _read_json(folder / "sentence_bert_config.json")
            pooling = _read_json(folder / "1_Pooling" / "config.json")
        except (OSError, ValueError) as exc:
            raise UnsupportedModel(
                f"{folder} is not a sentence-transformers folder ({exc.__class__.__name__})"
            ) from exc
        kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]  # type: ignore[union-attr]
        problems = []
        if not (folder / "model.safetensors").is_file() or not (folder / "tokenizer.json").is_file():
            problems.append("needs model.safetensors and tokenizer.json")
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":  # type: ignore[union-attr]
            problems.append(f"model_type {config.get('model_type')!r} / activation {config.get('hidden_act')!r}")  # type: ignore[union-attr]
        if config.get("position_embedding_type", "absolute") != "absolute":  # type: ignore[union-attr]
            problems.append("relative position embeddings")
        if kinds != ["Transformer", "Pooling", "Normalize"]:
            problems.append(f"modules {kinds}")
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}  # type: ignore[union-attr]
        if modes != {"pooling_mode_mean_tokens"}:
            problems.append(f"pooling {sorted(modes)}")
        if problems:
            raise UnsupportedModel(f"{folder}: " + "; ".join(problems))
        return {
            **config,
            "max_seq_length": min(
                int(st_config.get("max_seq_length", 512)), int(config.get("max_position_embeddings", 512))
            ),
        }  # type: ignore[union-attr, arg-type]

    def _norm(self, x: np.ndarray, gb: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * gb[0] + gb[1]

    def encode_one(self, text: str) -> np.ndarray:
        ids = np.asarray(self.tokenizer.encode(text).ids, dtype=np.int64)
        n, h = len(ids), self.heads
        d = self.hidden // h
        scale = np.float32(1.0 / math.sqrt(d))
        x = self._norm(self.word[ids] + self.position[:n] + self.token_type, self.emb_norm)
        for qkv_w, qkv_b, out_w, out_b, norm1, in_w, in_b, ffn_w, ffn_b, norm2 in self.layers:
            qkv = x @ qkv_w + qkv_b
            # (heads, n, d) contiguous copies: numpy's stacked matmul is only fast on contiguous data
            q = np.ascontiguousarray(qkv[:, : self.hidden].reshape(n, h, d).transpose(1, 0, 2))
            k = np.ascontiguousarray(qkv[:, self.hidden : 2 * self.hidden].reshape(n, h, d).transpose(1, 2, 0))
            v = np.ascontiguousarray(qkv[:, 2 * self.hidden :].reshape(n, h, d).transpose(1, 0, 2))
            scores = (q @ k) * scale
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            attn = (scores @ v).transpose(1, 0, 2).reshape(n, self.hidden)
            x = self._norm(attn @ out_w + out_b + x, norm1)
            x = self._norm(_gelu(x @ in_w + in_b) @ ffn_w + ffn_b + x, norm2)
        pooled = x.mean(0)
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        rows = range(len(texts))
        if progress and texts:
            from tqdm import tqdm

            rows = tqdm(rows, desc="Embedding", unit="chunk", leave=False)
        # One BLAS thread: these matrices are small (one passage, 384 wide), and OpenBLAS's thread
        # hand-offs cost more than they save, ten times more on a busy machine (docs/BENCHMARKS.md).
        with threadpool_limits(limits=1, user_api="blas"):
            for i in rows:
                out[i] = self.encode_one(texts[i])
        return out


class BuildEncoder:
    """The encoder a build uses: numpy for a few passages (no torch import), sentence-transformers for many.

    Both run the configured model and record the same model name, so their vectors mix freely
    in one index and one embedding cache.

    Args:
        model: The KB_MODEL setting.
        threads: Torch threads for the full model (0 = library default).
        small_batch: Largest batch encoded with numpy.
    """

    def __init__(self, model: str, threads: int = 0, small_batch: int = SMALL_BATCH):
        self.name, self._source = resolve_model(model)
        self._model = model
        self._threads = threads
        self.small_batch = small_batch
        self._numpy: NumpyBertEncoder | None = None
        self._numpy_error: str | None = None
        self._full: SentenceTransformerEmbedder | None = None
        self._lock = threading.Lock()
        self.backends: list[str] = []

    def _numpy_encoder(self) -> NumpyBertEncoder | None:
        with self._lock:
            if self._numpy is None and self._numpy_error is None:
                try:
                    self._numpy = NumpyBertEncoder(self._source)
                except UnsupportedModel as exc:
                    self._numpy_error = str(exc)
                    log.info("numpy encoder not used (%s); using sentence-transformers", exc)
            return self._numpy

    def _full_encoder(self) -> SentenceTransformerEmbedder:
        with self._lock:
            if self._full is None:
                self._full = SentenceTransformerEmbedder(self._model, threads=self._threads)
            return self._full

    @property
    def dimension(self) -> int:
        enc = self._numpy_encoder()
        return enc.dimension if enc is not None else self._full_encoder().dimension

    def encode(self, texts: list[str], *, progress: bool = False, batch_size: int = 64) -> np.ndarray:
        """Encode passages into (n, dim) float32 unit vectors."""
        if len(texts) <= self.small_batch:
            enc = self._numpy_encoder()
            if enc is not None:
                self.backends.append("numpy")
                return enc.encode(texts, progress=progress)
        self.backends.append("sentence-transformers")
        return self._full_encoder().encode(texts, progress=progress, batch_size=batch_size)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]
