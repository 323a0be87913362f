"""Open one index generation read-only: store, FAISS, BM25, manifest."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import numpy as np

from ingest import layout
from ingest.build import check_compatible
from ingest.embedder import Embedder
from ingest.errors import IndexMismatchError, NotFoundError
from ingest.models import Article, Paragraph, Passage
from ingest.store import SqliteStore
from ingest.tokenize import TOKENIZER_ID


class IndexReader:
    """An immutable snapshot of the index, safe to share between threads.

    Args:
        index_dir: the index directory (its live generation is opened).
        embedder: the query embedder; must be the model the index was built with.

    Raises:
        IndexNotFoundError: there is no index.
        IndexMismatchError: the index was built with another model, dimension or tokenizer.
    """

    def __init__(self, index_dir: str | os.PathLike, embedder: Embedder) -> None:
        self.index_dir = Path(index_dir)
        self.generation = layout.require_generation(self.index_dir)
        self.manifest = layout.read_manifest(self.generation)
        if self.manifest.get("format_version") != layout.FORMAT_VERSION:
            raise IndexMismatchError(
                f"Index format {self.manifest.get('format_version')} is not {layout.FORMAT_VERSION}; "
                "re-run 'wenda ingest --rebuild'."
            )
        check_compatible(self.manifest, model_id=embedder.model_id, dim=embedder.dim, tokenizer=TOKENIZER_ID)
        self.embedder = embedder
        self.store = SqliteStore(self.generation / layout.STORE, readonly=True)

    @property
    def passage_count(self) -> int:
        return int(self.manifest["counts"]["passages"])

    @property
    def article_count(self) -> int:
        return int(self.manifest["counts"]["articles"])

    @cached_property
    def faiss_index(self):
        import faiss

        index = faiss.read_index(str(self.generation / layout.DENSE))
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSW):
            inner.hnsw.efSearch = int(self.manifest["index_settings"]["hnsw_ef_search"])
        return index

    @cached_property
    def bm25(self):
        """(bm25s.BM25, row ids) or None for an empty index. Memory-mapped."""
        if self.passage_count == 0:
            return None
        import bm25s

        model = bm25s.BM25.load(str(self.generation / layout.BM25_DIR), mmap=True, allow_pickle=False)
        ids = np.load(self.generation / layout.BM25_IDS, mmap_mode="r", allow_pickle=False)
        return model, ids

    def passages(self, rowids) -> dict[int, Passage]:
        return self.store.passages_by_rowid(rowids)

    def passage(self, passage_id: str) -> Passage:
        """Raises NotFoundError for an unknown id."""
        p = self.store.passage(passage_id)
        if p is None:
            raise NotFoundError(f"No passage {passage_id!r}; passage ids look like '<article_id>:<paragraph>'.")
        return p

    def article(self, article_id: str) -> tuple[Article, list[Paragraph]]:
        """Raises NotFoundError for an unknown id."""
        a = self.store.article(article_id)
        if a is None:
            raise NotFoundError(f"No article {article_id!r}; 'wenda info' lists the articles.")
        return a, self.store.paragraphs(article_id)

    def close(self) -> None:
        self.store.close()
