"""The narrow storage protocol that build and query time both use.

A backend stores articles, their paragraphs and passages, one vector and
one list of BM25 terms per passage, and answers four kinds of read: dense
top-k, keyword top-k, passages by row, and an article with its paragraphs.
Fusion, rerank, answers and citations live above it and never know which
backend they talk to (as txtai's ``ann/base.py``). Two implementations:
the index dir (``ingest.dirstore``) and PostgreSQL (``ingest.pgstore``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .contract import Manifest
from .errors import IndexBusyError
from .models import Article, Paragraph, Passage


@dataclass(frozen=True)
class PreparedArticle:
    """An article ready to store: split, cut into terms and embedded by the build side.

    Args:
        article / content_hash: the article and the hash that says whether it changed.
        paragraphs / passages: as the splitter made them.
        terms: ``contract.terms_for(p)`` per passage.
        vectors: ``(len(passages), dim)`` float32, L2-normalised.
        vector_keys: the cache key of each passage's vector (its embedded text's hash).
    """

    article: Article
    content_hash: str
    paragraphs: tuple[Paragraph, ...]
    passages: tuple[Passage, ...]
    terms: tuple[tuple[str, ...], ...]
    vectors: np.ndarray
    vector_keys: tuple[bytes, ...]


@dataclass(frozen=True)
class Scored:
    """A backend row id of a passage (stable within a snapshot) and its score."""

    row: int
    score: float


@dataclass(frozen=True)
class Counts:
    articles: int
    passages: int


@dataclass(frozen=True)
class WriteReceipt:
    """What a committed write published.

    Args:
        generation: the published generation (unchanged when nothing changed).
        added / replaced / deleted: article ids.
        passages_added / passages_removed: passage rows.
    """

    generation: int
    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    passages_added: int = 0
    passages_removed: int = 0
    counts: Counts = field(default_factory=lambda: Counts(0, 0))


@dataclass(frozen=True)
class MaintenanceReport:
    """What ``maintain`` did: one line per part it rebuilt, and the generation."""

    generation: int
    done: tuple[str, ...] = ()


class Snapshot(Protocol):
    """One consistent, read-only state; safe to share between threads."""

    generation: int
    manifest: Manifest
    counts: Counts
    dense_kind: str

    def dense_topk(self, vector: np.ndarray, k: int) -> list[Scored]: ...

    def keyword_topk(self, terms: Sequence[str], k: int) -> list[Scored]: ...

    def doc_freq(self, term: str) -> int: ...

    def passages(self, rows: Sequence[int]) -> dict[int, Passage]: ...

    def passage(self, passage_id: str) -> Passage | None: ...

    def article(self, article_id: str) -> tuple[Article, list[Paragraph]] | None: ...

    def article_ids(self, *, limit: int = 1000, offset: int = 0) -> list[str]: ...

    def close(self) -> None: ...


class WriteSession(Protocol):
    """Changes are invisible until ``commit()``; leaving without it rolls back."""

    def content_hash(self, article_id: str) -> str | None: ...

    def cached_vectors(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]: ...

    def put(self, article: PreparedArticle) -> None: ...

    def delete(self, article_id: str) -> None: ...

    def commit(self) -> WriteReceipt: ...


class Backend(Protocol):
    """Where an index lives: an index dir or a PostgreSQL database."""

    location: str

    def manifest(self) -> Manifest | None: ...

    def snapshot(self) -> Snapshot: ...

    def generation(self) -> int: ...

    def writer(self, *, manifest: Manifest, wait: float = 0.0, kind: str = "write",
               total: int | None = None) -> AbstractContextManager[WriteSession]: ...

    def maintain(self, *, force: bool = False) -> MaintenanceReport: ...

    def close(self) -> None: ...


def busy_error(location: str, info: dict | None) -> IndexBusyError:
    """The error a refused writer gets: who writes, how far, and when to retry
    (the holder's time left at its pace so far, 1-60 s; 5 s when it does not say).

    Args:
        info: the lock holder's progress {kind, started (epoch s), done, total}, if known.
    """
    import time

    info = info or {}
    what, retry = "", 5
    if info.get("kind"):
        done, total = info.get("done"), info.get("total")
        what = f" ({info['kind']}" + (f", {done} of {total} articles" if total else "") + ")"
        elapsed = time.time() - float(info.get("started") or time.time())
        if total and done:
            retry = int(elapsed / done * max(total - done, 0)) + 1
    retry = max(1, min(60, retry))
    return IndexBusyError(f"Another wenda process is writing to {location}{what}; try again in {retry} s.",
                          retry_after=retry)


def is_url(location: str | os.PathLike) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


def open_backend(location: str | os.PathLike, **options) -> Backend:
    """The backend at ``location``: a ``postgresql://`` URL or an index directory.

    Args:
        options: backend knobs (``DirOptions`` fields for a directory,
            ``PgOptions`` fields for PostgreSQL).
    """
    if is_url(location):
        from .pgstore.backend import PgBackend

        return PgBackend(str(location), **options)
    from .dirstore.backend import DirBackend

    return DirBackend(location, **options)
