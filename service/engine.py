"""One object that the CLI and the HTTP app share: it turns Settings into
plain arguments for the core and keeps the open index snapshot.

Reads use an immutable snapshot (one index generation); writes go through
``ingest.build.update_index`` under a lock and then swap the snapshot, so a
query never sees half of a write.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest import layout
from ingest.build import IndexSettings, IngestProgress, check_compatible, update_index
from ingest.embedder import CachedEmbedder, EmbeddingCache, load_embedder, model_id_for
from ingest.errors import BadQueryError, IndexNotFoundError
from ingest.models import Article, Hit, IngestReport, Passage, SkippedFile
from ingest.readers import count_articles, iter_articles
from ingest.splitter import SplitterSettings
from ingest.tokenize import TOKENIZER_ID
from retriever.answer import Answer, AnswererSettings, ExtractiveAnswerer
from retriever.index import IndexReader
from retriever.search import HybridSettings, make_retriever

from .settings import Settings


@dataclass
class Snapshot:
    """An open index generation and the answerers built on it."""

    reader: IndexReader
    answerers: dict


class Wenda:
    """The service facade over one index directory.

    Args:
        settings: the settings (built once by the caller).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._embedder = None
        self._snapshot: Snapshot | None = None
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()

    # ---- parts ----------------------------------------------------------------
    @property
    def index_dir(self) -> Path:
        return Path(self.settings.index_dir)

    def embedder(self) -> CachedEmbedder:
        with self._lock:
            if self._embedder is None:
                inner = load_embedder(self.settings.embed_model, threads=self.settings.embed_threads)
                self._embedder = CachedEmbedder(inner, EmbeddingCache(self.index_dir / layout.CACHE))
            return self._embedder

    def index_settings(self) -> IndexSettings:
        return IndexSettings(splitter=SplitterSettings(max_chars=self.settings.max_passage_chars),
                             hnsw_min_passages=self.settings.hnsw_min_passages)

    def hybrid_settings(self) -> HybridSettings:
        s = self.settings
        return HybridSettings(fusion=s.fusion, alpha=s.fusion_alpha, rrf_k=s.rrf_k, candidates=s.candidates,
                              rerank_weight=s.rerank_weight, rerank_depth=s.rerank_depth)

    def answerer_settings(self) -> AnswererSettings:
        s = self.settings
        return AnswererSettings(passages=s.answer_passages, read_passages=s.read_passages,
                                min_confidence=s.min_confidence,
                                min_confidence_crosslingual=s.min_confidence_crosslingual,
                                short_confidence=s.short_confidence)

    # ---- snapshots --------------------------------------------------------------
    def has_index(self) -> bool:
        return layout.current_generation(self.index_dir) is not None

    def can_auto_ingest(self) -> bool:
        return (self.settings.auto_ingest and not self.has_index()
                and Path(self.settings.corpus_dir).is_dir())

    def snapshot(self) -> Snapshot:
        """The live generation, reopened when a writer (this or another
        process) has published a newer one.

        Raises:
            IndexNotFoundError: there is no index.
            IndexMismatchError: it was built with another model.
        """
        gen = layout.current_generation(self.index_dir)
        if gen is None:
            raise IndexNotFoundError(
                f"No index at {self.index_dir}. Run 'wenda ingest' first or set WENDA_INDEX_DIR."
            )
        with self._lock:
            if self._snapshot is None or self._snapshot.reader.generation != gen:
                # Refuse a mismatched index before loading a model it cannot use.
                manifest = layout.read_manifest(gen)
                check_compatible(manifest, model_id=model_id_for(self.settings.embed_model),
                                 dim=manifest.get("dim"), tokenizer=TOKENIZER_ID)
                reader = IndexReader(self.index_dir, self.embedder())
                # Load FAISS and BM25 now, while the generation is live: a writer
                # deletes generations older than the previous one, and a lazy load
                # after two quick writes would find the files gone.
                reader.faiss_index  # noqa: B018
                reader.bm25  # noqa: B018
                self._snapshot = Snapshot(reader, {})
            return self._snapshot

    def warm_up(self) -> None:
        """Load what the first question would otherwise wait for: the word
        segmenter and its tagger (about 1-2 s), the query path of each part."""
        self.ask("湖北为基层配备了多少名大学生乡村医生？")

    def answerer(self, snap: Snapshot, mode: str | None = None) -> ExtractiveAnswerer:
        mode = mode or self.settings.mode
        with self._lock:
            if mode not in snap.answerers:
                snap.answerers[mode] = ExtractiveAnswerer(
                    snap.reader, mode=mode, settings=self.answerer_settings(),
                    hybrid=self.hybrid_settings())
            return snap.answerers[mode]

    # ---- writes -----------------------------------------------------------------
    def ingest(self, paths: Sequence[str | Path] | None = None, *, rebuild: bool = False,
               progress: bool = False, on_progress: Callable[[IngestProgress], None] | None = None) -> IngestReport:
        """Ingest files or directories (default: the corpus dir); ``on_progress``
        is told how far it is, out of the files and .jsonl lines counted first."""
        paths = list(paths) if paths else [self.settings.corpus_dir]
        expected = count_articles(paths) if on_progress else None
        return self.write(upserts=iter_articles(paths), rebuild=rebuild, progress=progress,
                          on_progress=on_progress, expected_articles=expected)

    def write(self, *, upserts: Iterable[Article | SkippedFile] = (), deletes: Sequence[str] = (),
              rebuild: bool = False, progress: bool = False,
              on_progress: Callable[[IngestProgress], None] | None = None,
              expected_articles: int | None = None) -> IngestReport:
        """Apply a write and swap in the new snapshot before returning."""
        with self._write_lock:
            report = update_index(self.index_dir, self.embedder(), upserts=upserts, deletes=deletes,
                                  settings=self.index_settings(), rebuild=rebuild, progress=progress,
                                  on_progress=on_progress, expected_articles=expected_articles,
                                  lock_timeout=self.settings.write_lock_timeout)
            if self.has_index():
                self.snapshot()
            return report

    def delete(self, article_id: str) -> IngestReport:
        return self.write(deletes=[article_id])

    # ---- reads ------------------------------------------------------------------
    def search(self, query: str, *, k: int | None = None, mode: str | None = None) -> list[tuple[Hit, Passage]]:
        self._check_length(query)
        snap = self.snapshot()
        retriever = make_retriever(snap.reader, mode or self.settings.mode, self.hybrid_settings())
        return retriever.search_passages(query, k or self.settings.top_k)

    def _check_length(self, text: str) -> None:
        limit = self.settings.max_question_chars
        if isinstance(text, str) and len(text) > limit:
            raise BadQueryError(f"The question is {len(text)} characters; the limit is {limit} "
                                "(WENDA_MAX_QUESTION_CHARS).")

    def ask(self, question: str, *, k: int | None = None, mode: str | None = None) -> Answer:
        self._check_length(question)
        snap = self.snapshot()
        return self.answerer(snap, mode).ask(question, k=k or self.settings.top_k)

    def article(self, article_id: str):
        return self.snapshot().reader.article(article_id)

    def passage(self, passage_id: str) -> Passage:
        return self.snapshot().reader.passage(passage_id)

    def info(self) -> dict:
        snap = self.snapshot()
        m = snap.reader.manifest
        return {
            "index_dir": str(self.index_dir),
            "generation": snap.reader.generation.name,
            "created_at": m["created_at"],
            "embed_model": m["embed_model"],
            "dim": m["dim"],
            "faiss_index": m["faiss_index"],
            "tokenizer": m["tokenizer"],
            "splitter": m["splitter"],
            "articles": m["counts"]["articles"],
            "passages": m["counts"]["passages"],
            "article_ids": snap.reader.store.article_ids(limit=50),
            "versions": m["versions"],
        }
