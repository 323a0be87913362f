"""One object that the CLI and the HTTP app share: it turns Settings into
plain arguments for the core and keeps the live index snapshot.

Reads use one snapshot (one published generation) per request; writes go
through ``ingest.build.update_index`` into a backend write session, and the
next request sees the new generation. Queries and ingest embed on separate
engines, so an ingest never makes a question wait for its batches (measured:
query embedding p50 5.6 s during an ingest on one shared engine, 33 ms on two).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from ingest import layout
from ingest.backend import is_url, open_backend
from ingest.build import IndexSettings, IngestProgress, update_index
from ingest.contract import check_compatible
from ingest.dirstore.dense import DenseSettings
from ingest.embedder import CachedEmbedder, EmbeddingCache, MemoryCache, load_embedder, model_id_for
from ingest.errors import AnswererUnavailableError, BadQueryError, IndexNotFoundError
from ingest.models import Article, Hit, IngestReport, Passage, SkippedFile
from ingest.readers import count_articles, iter_articles
from ingest.splitter import SplitterSettings
from ingest.tokenize import TOKENIZER_ID
from retriever.answer import Answer, AnswererSettings, ExtractiveAnswerer
from retriever.followup import standalone
from retriever.generate import (
    GeneratedAnswer,
    GenerativeAnswerer,
    LlmConfig,
    Prepared,
    Token,
    chat_model,
    rewrite_question,
)
from retriever.index import IndexReader
from retriever.live import Live, LiveIndex
from retriever.search import HybridSettings, check_query, make_retriever

from .settings import Settings

log = logging.getLogger("wenda")

NO_LLM = ("No LLM is configured; set WENDA_LLM_BASE_URL and WENDA_LLM_MODEL (see the README's LLM section), "
          "or ask with the extractive answerer.")

#: The snapshot a request reads (kept under its old name for callers).
Snapshot = Live


class Wenda:
    """The service facade over one store (an index dir or PostgreSQL).

    Args:
        settings: the settings (built once by the caller).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._query_embedder = None
        self._ingest_embedder = None
        self._backend = None
        self._live: LiveIndex | None = None
        self._lock = threading.RLock()
        self._maintaining = threading.Lock()
        self._chat = None

    # ---- parts ----------------------------------------------------------------
    @property
    def store(self) -> str:
        """Where the index is: WENDA_STORE (a URL or a directory), else WENDA_INDEX_DIR."""
        return str(self.settings.store) if self.settings.store else str(self.settings.index_dir)

    @property
    def index_dir(self) -> Path:
        """The index dir (or, for PostgreSQL, where eval keeps its caches)."""
        return Path(self.settings.index_dir) if is_url(self.store) else Path(self.store)

    def backend(self):
        with self._lock:
            if self._backend is None:
                self._backend = open_backend(self.store, **self._backend_options())
            return self._backend

    def _backend_options(self) -> dict:
        if is_url(self.store):
            return {"options": self.pg_options()}
        return {"options": self.index_settings().dir_options()}

    def pg_options(self):
        from ingest.pgstore.backend import PgOptions

        s = self.settings
        return PgOptions(ef_search=s.pg_ef_search, champions=s.pg_champions)

    def embedder(self) -> CachedEmbedder:
        """The query embedder: its own engine (one thread) and in-memory LRUs
        of questions and of the sentences the answerer embeds."""
        with self._lock:
            if self._query_embedder is None:
                inner = load_embedder(self.settings.embed_model, threads=1)
                self._query_embedder = CachedEmbedder(inner, MemoryCache())
            return self._query_embedder

    def ingest_embedder(self) -> CachedEmbedder:
        """The ingest embedder: a second engine (WENDA_EMBED_THREADS), so
        questions never queue behind an ingest's batches. An embedding cache
        file beside the index (format 1's, or one a test warmed) is read too."""
        with self._lock:
            if self._ingest_embedder is None:
                inner = load_embedder(self.settings.embed_model, threads=self.settings.embed_threads)
                cache_file = self.index_dir / layout.CACHE
                cache = EmbeddingCache(cache_file) if cache_file.is_file() else None
                self._ingest_embedder = CachedEmbedder(inner, cache)
            return self._ingest_embedder

    def index_settings(self) -> IndexSettings:
        s = self.settings
        return IndexSettings(splitter=SplitterSettings(max_chars=s.max_passage_chars),
                             dense=DenseSettings(ivf_min=s.dense_ivf_min, flat_below=s.dense_flat_below,
                                                 delta_max=s.dense_delta_max),
                             keyword_rebuild_deleted=s.keyword_rebuild_deleted)

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
        if is_url(self.store):
            return self.backend().generation() > 0
        return layout.current_generation(self.index_dir) is not None

    def can_auto_ingest(self) -> bool:
        return (self.settings.auto_ingest and not self.has_index() and not self._is_old_format()
                and Path(self.settings.corpus_dir).is_dir())

    def _is_old_format(self) -> bool:
        return not is_url(self.store) and layout.format_of(self.index_dir) == 1

    def live(self) -> LiveIndex:
        with self._lock:
            if self._live is None:
                backend = self.backend()
                # Refuse a mismatched index before loading a model it cannot use.
                manifest = backend.manifest() if backend.generation() else None
                if manifest is not None:
                    check_compatible(manifest, model_id=model_id_for(self.settings.embed_model), dim=None,
                                     tokenizer=TOKENIZER_ID)
                self._live = LiveIndex(backend, self.embedder())
            return self._live

    def snapshot(self) -> Snapshot:
        """The live generation, reopened when a writer (this or another
        process) has published a newer one.

        For PostgreSQL a snapshot is a transaction of one request (``reading``);
        here one is only opened and closed again, to check that it can be.

        Raises:
            IndexNotFoundError: there is no index.
            IndexMismatchError: it was built with another model, or is of the older format.
        """
        if is_url(self.store):
            with self.reading() as live:
                return live
        if not self.has_index():
            if self._is_old_format():
                self.backend().latest()  # raises the older-format message
            raise IndexNotFoundError(
                f"No index at {self.store}. Run 'wenda ingest' first or set WENDA_INDEX_DIR."
            )
        return self.live().current()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Snapshot]:
        """The snapshot one request reads from start to end. For PostgreSQL it
        is a transaction of its own, ended when the request is done."""
        if not is_url(self.store):
            yield self.snapshot()
            return
        if not self.has_index():
            raise IndexNotFoundError(f"No index at {self.backend().location}. Run 'wenda --store URL ingest' first "
                                     "or set WENDA_STORE.")
        snap = self.backend().snapshot()
        try:
            yield Live(IndexReader(None, self.embedder(), snapshot=snap))
        finally:
            snap.close()

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

    # ---- the LLM ------------------------------------------------------------------
    def llm_config(self) -> LlmConfig | None:
        """How to reach the LLM, or None when none is configured."""
        s = self.settings
        if not s.llm_base_url:
            return None
        key = s.llm_api_key.get_secret_value() if s.llm_api_key is not None else None
        return LlmConfig(s.llm_base_url, s.llm_model or "", key or None, timeout=s.llm_timeout,
                         max_tokens=s.llm_max_tokens, max_retries=s.llm_max_retries)

    def uses_llm(self, answerer: str | None) -> bool:
        """Whether a question goes to the LLM: "auto" (or None) when one is
        configured, "llm" always, "extractive" never.

        Raises:
            AnswererUnavailableError: "llm" asked for and none configured.
        """
        if answerer == "llm" and self.llm_config() is None:
            raise AnswererUnavailableError(NO_LLM)
        return answerer != "extractive" and self.llm_config() is not None

    def chat(self):
        """The LangChain chat model (one per engine; it pools connections)."""
        with self._lock:
            if self._chat is None:
                config = self.llm_config()
                if config is None:
                    raise AnswererUnavailableError(NO_LLM)
                self._chat = chat_model(config)
            return self._chat

    def prepare_llm(self, question: str, *, k: int | None = None,
                    mode: str | None = None) -> tuple[GenerativeAnswerer, Prepared]:
        """Retrieval and the extractive answer, read from one snapshot; the
        LLM step that follows needs no index.

        Raises:
            BadQueryError: the question is unusable.
            AnswererUnavailableError: no LLM is configured.
        """
        self._check_length(question)
        s = self.settings
        with self.reading() as snap:
            generator = GenerativeAnswerer(self.answerer(snap, mode), self.chat(), passages=s.llm_passages,
                                           skip_share=s.llm_skip_share, timeout=s.llm_timeout)
            return generator, generator.prepare(question, k=k or s.top_k)

    def ask_llm(self, question: str, *, k: int | None = None, mode: str | None = None) -> GeneratedAnswer:
        """The LLM's answer, every sentence checked; the extractive one on any LLM failure."""
        generator, prepared = self.prepare_llm(question, k=k, mode=mode)
        return generator.complete(prepared)

    def stream_llm(self, question: str, *, k: int | None = None,
                   mode: str | None = None) -> Iterator[Token | GeneratedAnswer]:
        """Tokens as the LLM writes them, then the checked answer. Retrieval
        runs now, so a bad question raises here, before anything is sent."""
        generator, prepared = self.prepare_llm(question, k=k, mode=mode)
        return generator.stream(prepared)

    def standalone(self, message: str, history: list[tuple[str, str]], *, answerer: str | None = None
                   ) -> tuple[str, str | None]:
        """The latest message of a conversation as a question that stands alone.

        Args:
            message: the latest user message.
            history: the earlier turns, (role, text), oldest first.
            answerer: as for ``uses_llm``; the LLM rewrites only when it would answer.

        Returns:
            (question, how): how is "llm", "rules", or None when unchanged.

        Raises:
            BadQueryError: the message is empty, overlong or content-free.
        """
        self._check_length(message)
        check_query(message, 1)
        previous = [text for role, text in history if role == "user"]
        if not previous:
            return message.strip(), None
        if self.uses_llm(answerer):
            rewritten = rewrite_question(self.chat(), history, message,
                                         max_chars=self.settings.max_question_chars)
            if rewritten:
                return rewritten, "llm" if rewritten != message.strip() else None
        rewritten = standalone(message, previous)
        return rewritten, "rules" if rewritten != message.strip() else None

    # ---- writes -----------------------------------------------------------------
    def ingest(self, paths: Sequence[str | Path] | None = None, *, rebuild: bool = False,
               progress: bool = False, on_progress: Callable[[IngestProgress], None] | None = None,
               wait: float | None = None) -> IngestReport:
        """Ingest files or directories (default: the corpus dir); ``on_progress``
        is told how far it is, out of the files and .jsonl lines counted first."""
        paths = list(paths) if paths else [self.settings.corpus_dir]
        expected = count_articles(paths) if on_progress else None
        return self.write(upserts=iter_articles(paths), rebuild=rebuild, progress=progress,
                          on_progress=on_progress, expected_articles=expected, wait=wait)

    def write(self, *, upserts: Iterable[Article | SkippedFile] = (), deletes: Sequence[str] = (),
              rebuild: bool = False, progress: bool = False,
              on_progress: Callable[[IngestProgress], None] | None = None,
              expected_articles: int | None = None, wait: float | None = None,
              maintain: str = "inline") -> IngestReport:
        """Apply a write; the next request reads the new generation.

        Args:
            wait: seconds to wait for another writer (default
                WENDA_WRITE_LOCK_TIMEOUT; HTTP writes pass 0 and answer 503).
            maintain: "inline" compacts after the write when due (the CLI),
                "background" in a thread of this process (the server).

        Raises:
            IndexBusyError: another writer holds the index past ``wait``.
        """
        report = update_index(self.backend(), self.ingest_embedder(), upserts=upserts, deletes=deletes,
                              settings=self.index_settings(), rebuild=rebuild, progress=progress,
                              on_progress=on_progress, expected_articles=expected_articles,
                              lock_timeout=self.settings.write_lock_timeout if wait is None else wait,
                              maintain=maintain == "inline" and self.settings.maintain == "auto")
        if maintain == "background" and self.settings.maintain == "auto":
            self._maintain_in_background()
        return report

    def _maintain_in_background(self) -> None:
        backend = self.backend()
        if not backend.maintenance_due() or not self._maintaining.acquire(blocking=False):
            return

        def run() -> None:
            try:
                report = backend.maintain()
                for line in report.done:
                    log.info("maintenance: %s", line)
            except Exception:  # noqa: BLE001 - a failed compaction leaves the index as it was; say so
                log.exception("maintenance failed; the index is unchanged")
            finally:
                self._maintaining.release()

        threading.Thread(target=run, name="wenda-maintain", daemon=True).start()

    def delete(self, article_id: str, *, wait: float | None = None, maintain: str = "inline") -> IngestReport:
        return self.write(deletes=[article_id], wait=wait, maintain=maintain)

    def maintain(self, *, force: bool = False):
        """Compact the index now (``wenda maintain``)."""
        return self.backend().maintain(force=force)

    # ---- reads ------------------------------------------------------------------
    def search(self, query: str, *, k: int | None = None, mode: str | None = None) -> list[tuple[Hit, Passage]]:
        self._check_length(query)
        with self.reading() as snap:
            retriever = make_retriever(snap.reader, mode or self.settings.mode, self.hybrid_settings())
            return retriever.search_passages(query, k or self.settings.top_k)

    def _check_length(self, text: str) -> None:
        limit = self.settings.max_question_chars
        if isinstance(text, str) and len(text) > limit:
            raise BadQueryError(f"The question is {len(text)} characters; the limit is {limit} "
                                "(WENDA_MAX_QUESTION_CHARS).")

    def ask(self, question: str, *, k: int | None = None, mode: str | None = None) -> Answer:
        self._check_length(question)
        with self.reading() as snap:
            return self.answerer(snap, mode).ask(question, k=k or self.settings.top_k)

    def article(self, article_id: str):
        with self.reading() as snap:
            return snap.reader.article(article_id)

    def passage(self, passage_id: str) -> Passage:
        with self.reading() as snap:
            return snap.reader.passage(passage_id)

    def info(self) -> dict:
        with self.reading() as snap:
            return self._info(snap)

    def _info(self, snap: Snapshot) -> dict:
        m = snap.reader.manifest
        return {
            "index_dir": self.backend().location,
            "generation": f"gen-{snap.reader.generation:06d}",
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
