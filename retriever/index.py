"""An open index for queries: one backend snapshot plus the query embedder.

``IndexReader`` is what retrievers, the answerer, eval and bench hold. It
wraps one ``Snapshot`` (``ingest.backend``), so every read it serves comes
from one generation: a request that holds it sees the old state or the
new one, never a mix.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ingest.backend import Backend, Snapshot, open_backend
from ingest.contract import check_compatible
from ingest.embedder import Embedder
from ingest.errors import NotFoundError
from ingest.models import Article, Paragraph, Passage
from ingest.tokenize import TOKENIZER_ID


class _StoreView:
    """The few store reads callers of the older reader used (``reader.store``)."""

    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    def article(self, article_id: str) -> Article | None:
        found = self._snap.article(article_id)
        return found[0] if found else None

    def article_ids(self, *, limit: int = 1000, offset: int = 0) -> list[str]:
        return self._snap.article_ids(limit=limit, offset=offset)

    def passages_by_rowid(self, rows: Sequence[int]) -> dict[int, Passage]:
        return self._snap.passages(rows)


class IndexReader:
    """One snapshot of an index, safe to share between threads.

    Args:
        location: an index directory or a ``postgresql://`` URL (ignored
            when ``snapshot`` is given).
        embedder: the query embedder; must be the model the index was built with.
        snapshot: an open snapshot to read (default: the backend's latest).

    Raises:
        IndexNotFoundError: there is no index.
        IndexMismatchError: the index was built with another model, dimension
            or tokenizer, or is of wenda's older format.
    """

    def __init__(self, location: str | os.PathLike | Backend | None, embedder: Embedder, *,
                 snapshot: Snapshot | None = None) -> None:
        if snapshot is None:
            backend = location if hasattr(location, "snapshot") else open_backend(location)
            snapshot = backend.snapshot()
        check_compatible(snapshot.manifest, model_id=embedder.model_id, dim=embedder.dim, tokenizer=TOKENIZER_ID)
        self.snapshot = snapshot
        self.embedder = embedder
        self.generation = snapshot.generation
        self.store = _StoreView(snapshot)

    @property
    def manifest(self) -> dict:
        """The manifest with this generation's number, counts and dense kind."""
        m = self.snapshot.manifest
        return {**m.__dict__, "generation": self.generation, "faiss_index": self.snapshot.dense_kind,
                "created_at": getattr(self.snapshot, "created_at", m.created_at) or m.created_at,
                "counts": {"articles": self.article_count, "passages": self.passage_count}}

    @property
    def passage_count(self) -> int:
        return int(self.snapshot.counts.passages)

    @property
    def article_count(self) -> int:
        return int(self.snapshot.counts.articles)

    # The parts, for callers that load them up front (eval times loading apart).
    @property
    def faiss_index(self):
        return getattr(self.snapshot, "dense", None)

    @property
    def bm25(self):
        return getattr(self.snapshot, "searcher", None)

    def dense_topk(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        return [(s.row, s.score) for s in self.snapshot.dense_topk(vector, k)]

    def keyword_topk(self, terms: Sequence[str], k: int) -> list[tuple[int, float]]:
        return [(s.row, s.score) for s in self.snapshot.keyword_topk(terms, k)]

    def doc_freq(self, term: str) -> int:
        """Passages holding ``term`` (for IDF weights)."""
        return self.snapshot.doc_freq(term)

    def passages(self, rowids) -> dict[int, Passage]:
        return self.snapshot.passages(list(rowids))

    def passage(self, passage_id: str) -> Passage:
        """Raises NotFoundError for an unknown id."""
        p = self.snapshot.passage(passage_id)
        if p is None:
            raise NotFoundError(f"No passage {passage_id!r}; passage ids look like '<article_id>:<paragraph>'.")
        return p

    def article(self, article_id: str) -> tuple[Article, list[Paragraph]]:
        """Raises NotFoundError for an unknown id."""
        found = self.snapshot.article(article_id)
        if found is None:
            raise NotFoundError(f"No article {article_id!r}; 'wenda info' lists the articles.")
        return found

    def close(self) -> None:
        """The snapshot's parts are freed when the last reader drops them."""
