"""The live snapshot of a backend, swapped when a newer generation is published.

``LiveIndex.current()`` is called once per request: it asks the backend for
its generation (a cheap SQL read) and, when a write of this process or
another has published a newer one, builds the next snapshot. Requests keep
the snapshot they started with, so each sees one generation from search to
citation. Per-snapshot caches (answerers) hang off ``Live``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ingest.backend import Backend
from ingest.embedder import Embedder

from .index import IndexReader


@dataclass
class Live:
    """One generation's reader and what is built on it (answerers by mode)."""

    reader: IndexReader
    answerers: dict = field(default_factory=dict)


class LiveIndex:
    """The latest published snapshot of ``backend``, read with ``embedder``.

    Raises (from ``current``):
        IndexNotFoundError: nothing was published yet.
        IndexMismatchError: the index was built with another model or tokenizer.
    """

    def __init__(self, backend: Backend, embedder: Embedder) -> None:
        self.backend = backend
        self.embedder = embedder
        self._live: Live | None = None
        self._lock = threading.Lock()

    def current(self) -> Live:
        live = self._live
        if live is not None and self.backend.generation() == live.reader.generation:
            return live
        with self._lock:
            live = self._live
            snap = self.backend.snapshot()
            if live is None or live.reader.generation != snap.generation:
                live = Live(IndexReader(None, self.embedder, snapshot=snap))
                self._live = live
            return live
