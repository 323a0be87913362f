"""Build and update an index: read, split, hash, cut terms, embed, and hand
the prepared articles to a backend's write session (``ingest.backend``).

One call (one ``wenda ingest``, one POST, one DELETE) is one write session
and publishes one generation; a failure at any point publishes nothing.
Query time never imports this module: the contract both sides share is
``ingest.contract``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .backend import Backend, PreparedArticle, open_backend
from .contract import INDEX_TEXT_VERSION, Manifest, check_compatible, index_text, terms_for  # noqa: F401 - re-exported
from .dirstore.backend import DirOptions
from .dirstore.dense import DenseSettings
from .embedder import CachedEmbedder, Embedder, EmbeddingCache
from .errors import EmptyCorpusError
from .models import Article, IngestReport, SkippedFile
from .splitter import SplitterSettings, split_article, split_paragraphs
from .tokenize import TOKENIZER_ID

EMBED_BATCH = 64


@dataclass(frozen=True)
class IndexSettings:
    """Build-time knobs.

    Args:
        splitter: paragraph/passage splitting (recorded in the manifest).
        dense: when the index dir's FAISS base is IVF or flat, and when it is
            compacted (``ingest/dirstore/dense.py`` has the measurements).
        keyword_rebuild_deleted: rebuild the index dir's keyword index once
            this share of its documents is deleted.
    """

    splitter: SplitterSettings = field(default_factory=SplitterSettings)
    dense: DenseSettings = field(default_factory=DenseSettings)
    keyword_rebuild_deleted: float = 0.10

    def dir_options(self) -> DirOptions:
        return DirOptions(dense=self.dense, keyword_rebuild_deleted=self.keyword_rebuild_deleted)


def content_hash(article: Article) -> str:
    payload = json.dumps([article.title, article.text, article.date, article.source, article.url],
                         ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def vector_key(model_id: str, text: str) -> bytes:
    """The cache key of a passage vector: the model and the embedded text."""
    return EmbeddingCache.key(model_id, "passage", text)


# ---- the one write path ---------------------------------------------------------
def _progress(enabled: bool, total: int | None):
    from tqdm import tqdm

    return tqdm(total=total, unit="article", disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                desc="ingest")


@dataclass(frozen=True)
class IngestProgress:
    """How far a write is, given to ``update_index``'s ``on_progress`` after each article.

    Args:
        articles_done: articles (and skipped files) read so far.
        articles_total: how many there are, when known.
        passages: passages split from new or changed articles so far.
        seconds: since the write took the lock.
    """

    articles_done: int
    articles_total: int | None
    passages: int
    seconds: float


def update_index(
    index_dir: str | os.PathLike | Backend,
    embedder: Embedder,
    *,
    upserts: Iterable[Article | SkippedFile] = (),
    deletes: Sequence[str] = (),
    settings: IndexSettings | None = None,
    rebuild: bool = False,
    progress: bool = False,
    on_progress: Callable[[IngestProgress], None] | None = None,
    expected_articles: int | None = None,
    lock_timeout: float = 60.0,
    cache_path: str | os.PathLike | None = None,
    maintain: bool = True,
) -> IngestReport:
    """Add, replace and delete articles, publishing one new generation atomically.

    Args:
        index_dir: an index directory (created if missing), a
            ``postgresql://`` URL, or an open ``Backend``.
        embedder: the embedding model. Passage vectors are kept by the
            backend, so no text is embedded twice.
        upserts: articles to add or replace (``SkippedFile`` items are reported).
            An article whose content hash is unchanged is left alone.
        deletes: article ids to remove.
        settings: build settings (must match an existing index unless ``rebuild``).
        rebuild: start from an empty index instead of the live one.
        progress: show a progress bar on stderr.
        on_progress: called after each article with an ``IngestProgress`` (the
            caller decides what to show, and how often).
        expected_articles: how many items ``upserts`` will yield, for
            ``on_progress`` (default: its length when it has one).
        lock_timeout: seconds to wait for another writer (0: refuse at once).
        cache_path: an extra embedding cache file to look vectors up in and
            add them to (eval shares one between its indexes).
        maintain: compact the index after the write when a threshold is crossed.

    Returns:
        What was added, updated, left unchanged, deleted and skipped.

    Raises:
        IndexMismatchError: the live index was built with another model or splitter.
        NotFoundError: a delete names an article that is not in the index.
        IndexBusyError: another writer holds the lock past ``lock_timeout``.
        EmptyCorpusError: a new index would hold nothing.
    """
    t0 = time.perf_counter()
    settings = settings or IndexSettings()
    backend = index_dir if hasattr(index_dir, "writer") else open_backend(index_dir, options=settings.dir_options())
    if cache_path is not None:
        embedder = CachedEmbedder(embedder, EmbeddingCache(cache_path))
    report = IngestReport()
    manifest = Manifest.new(embed_model=embedder.model_id, dim=embedder.dim, splitter=settings.splitter)
    manifest = manifest.with_tokenizer(TOKENIZER_ID)
    total = len(upserts) if isinstance(upserts, Sequence) else expected_articles

    def tell(done: int, passages: int) -> None:
        if hasattr(backend, "tell_progress"):
            backend.tell_progress(done)
        if on_progress is not None:
            on_progress(IngestProgress(done, total, passages, time.perf_counter() - t0))

    with backend.writer(manifest=manifest, wait=lock_timeout, kind="ingest" if upserts else "delete", total=total,
                        rebuild=rebuild) as session:
        for note in getattr(session, "notes", ()):
            report.notes.append(note)
        for article_id in deletes:
            session.delete(article_id)
            report.deleted.append(article_id)
        embedded = _apply(session, embedder, upserts, settings, report, progress, total, tell)
        object.__setattr__(report, "passages_embedded", embedded)
        object.__setattr__(report, "passages_recut", getattr(session, "passages_recut", 0))
        first = getattr(session, "prev", True) is None
        if first and not (report.added or report.updated):
            reasons = "; ".join(f"{s.path}: {s.reason}" for s in report.skipped[:5])
            raise EmptyCorpusError("No articles to ingest" + (f" ({reasons})" if reasons else "") + ".")
        receipt = session.commit()
    object.__setattr__(report, "articles_total", receipt.counts.articles)
    object.__setattr__(report, "passages_total", receipt.counts.passages)
    object.__setattr__(report, "generation", receipt.generation)
    if maintain and hasattr(backend, "maintenance_due") and backend.maintenance_due():
        for line in backend.maintain().done:
            report.notes.append(f"maintenance: {line}")
    object.__setattr__(report, "seconds", time.perf_counter() - t0)
    return report


def _apply(session, embedder: Embedder, upserts: Iterable[Article | SkippedFile], settings: IndexSettings,
           report: IngestReport, progress: bool, total: int | None, tell: Callable[[int, int], None]) -> int:
    """Prepare each new or changed article and put it; returns how many passages were embedded."""
    pending: list[tuple[Article, str, list, list]] = []
    counts = {"passages": 0, "embedded": 0}

    def flush() -> None:
        if not pending:
            return
        texts = [index_text(p) for _, _, _, ps in pending for p in ps]
        keys = [vector_key(embedder.model_id, t) for t in texts]
        found = session.cached_vectors(keys)
        missing: dict[bytes, list[int]] = {}
        for i, k in enumerate(keys):
            if k not in found:
                missing.setdefault(k, []).append(i)
        vecs = np.empty((len(keys), embedder.dim), np.float32)
        for i, k in enumerate(keys):
            if k in found:
                vecs[i] = found[k]
        if missing:
            firsts = [rows[0] for rows in missing.values()]
            computed = embedder.embed_passages([texts[i] for i in firsts])
            if not hasattr(embedder, "computed"):  # a CachedEmbedder counts what reached its model itself
                counts["embedded"] += len(firsts)
            for rows, vec in zip(missing.values(), computed):
                vecs[rows] = vec
        at = 0
        for article, digest, paragraphs, passages in pending:
            n = len(passages)
            session.put(PreparedArticle(
                article=article, content_hash=digest, paragraphs=tuple(paragraphs), passages=tuple(passages),
                terms=tuple(tuple(terms_for(p)) for p in passages), vectors=vecs[at:at + n],
                vector_keys=tuple(keys[at:at + n])))
            at += n
        pending.clear()

    computed_before = getattr(embedder, "computed", 0)
    seen: set[str] = set()
    with _progress(progress, total) as bar:
        done = 0
        for item in upserts:
            bar.update(1)
            if done:  # the previous item is done (the body has several exits)
                tell(done, counts["passages"])
            done += 1
            if isinstance(item, SkippedFile):
                report.skipped.append(item)
                continue
            if item.article_id in seen:
                report.skipped.append(SkippedFile(item.path or item.article_id,
                                                  f"duplicate article id {item.article_id!r} in this ingest"))
                continue
            seen.add(item.article_id)
            digest = content_hash(item)
            old = session.content_hash(item.article_id)
            if old == digest:
                report.unchanged.append(item.article_id)
                continue
            paragraphs = split_paragraphs(item, heading_max_chars=settings.splitter.heading_max_chars)
            passages = split_article(item, settings.splitter)
            if not passages:
                report.skipped.append(SkippedFile(item.path or item.article_id, "no paragraphs"))
                continue
            (report.updated if old is not None else report.added).append(item.article_id)
            pending.append((item, digest, paragraphs, passages))
            counts["passages"] += len(passages)
            if sum(len(x[3]) for x in pending) >= EMBED_BATCH:
                flush()
            bar.set_postfix(passages=counts["passages"], refresh=False)
        flush()
        if done:
            tell(done, counts["passages"])
    computed = getattr(embedder, "computed", None)
    return computed - computed_before if computed is not None else counts["embedded"]
