"""The pipeline a LangChain user builds from its docs, with the same
embedding model, so that the difference measured is the pipeline:
RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50), the
LangChain FAISS vector store, LangChain's BM25Retriever with its default
preprocessing (``str.split``), and both in an EnsembleRetriever.

Needs the ``eval`` extra (langchain-community, langchain-classic,
langchain-text-splitters, rank_bm25). Used for measurement only: wenda itself
never loads a pickled LangChain store."""

from __future__ import annotations

import sys
import time
import warnings

from ingest.embedder import Embedder
from ingest.errors import ModelUnavailableError
from ingest.models import Article
from ingest.splitter import split_paragraphs
from retriever.langchain import WendaEmbeddings

from . import metrics
from .datasets import EvalQuestion
from .runner import KS

MODES = ("lc-ensemble", "lc-dense", "lc-bm25")


def require_packages() -> None:
    """Fail now, not after the evaluation, when the baseline's packages are missing.

    Raises:
        ModelUnavailableError: a LangChain package or rank-bm25 is not installed.
    """
    _imports()


def _imports():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from langchain_classic.retrievers import EnsembleRetriever
            from langchain_community.retrievers import BM25Retriever
            from langchain_community.vectorstores import FAISS
            from langchain_core.documents import Document
            from langchain_text_splitters import RecursiveCharacterTextSplitter
            import rank_bm25  # noqa: F401 - BM25Retriever imports it only when it builds
    except ImportError as exc:
        raise ModelUnavailableError(
            "the LangChain baseline needs extra packages: pip install -e '.[eval]' (or pass --no-baseline)"
        ) from exc
    return EnsembleRetriever, BM25Retriever, FAISS, Document, RecursiveCharacterTextSplitter


def _chunk_keys(article: Article, start: int, end: int, paragraph_gold: bool) -> list[str]:
    if not paragraph_gold:
        return [article.article_id]
    return [f"{article.article_id}:{p.paragraph}" for p in split_paragraphs(article)
            if p.start < end and p.end > start]


def run_baseline(articles: list[Article], questions: list[EvalQuestion], embedder: Embedder, *,
                 k: int = 10, progress: bool = True) -> dict:
    """Retrieval figures of the LangChain pipeline per mode.

    Returns:
        ``{mode: {recall@k..., mrr@10, ndcg@10, latency}}`` plus how many
        questions BM25 scored all-zero (its default preprocessing does not
        segment Chinese).
    """
    from tqdm import tqdm

    Ensemble, BM25, FAISS, Document, Splitter = _imports()
    paragraph_gold = any(":" in g for q in questions for g in q.gold)
    splitter = Splitter(chunk_size=500, chunk_overlap=50, add_start_index=True)
    docs = []
    for a in articles:
        for d in splitter.create_documents([a.text], metadatas=[{"article_id": a.article_id}]):
            s = d.metadata["start_index"]
            d.metadata["keys"] = _chunk_keys(a, s, s + len(d.page_content), paragraph_gold)
            docs.append(d)
    t0 = time.perf_counter()
    store = FAISS.from_documents(docs, WendaEmbeddings(embedder))
    index_seconds = time.perf_counter() - t0
    dense = store.as_retriever(search_kwargs={"k": k})
    bm25 = BM25.from_documents(docs)
    bm25.k = k
    ensemble = Ensemble(retrievers=[bm25, dense], weights=[0.5, 0.5])
    retrievers = {"lc-ensemble": ensemble, "lc-dense": dense, "lc-bm25": bm25}
    answerable = [q for q in questions if q.answerable]
    zero_bm25 = sum(1 for q in answerable if max(bm25.vectorizer.get_scores(q.question.split()), default=0) <= 0)
    out: dict = {"chunks": len(docs), "index_seconds": index_seconds, "bm25_all_zero_questions": zero_bm25}
    for mode, ret in retrievers.items():
        rows, lat = [], []
        for q in tqdm(answerable, desc=f"baseline [{mode}]", unit="q", file=sys.stderr, disable=not progress,
                      dynamic_ncols=True):
            t = time.perf_counter()
            found = ret.invoke(q.question)[:k]
            lat.append((time.perf_counter() - t) * 1000)
            gold = set(q.gold)
            ranked = []
            for d in found:
                keys = d.metadata["keys"]
                hit = [key for key in keys if key in gold]
                ranked.append(hit[0] if hit else keys[0] if keys else d.metadata["article_id"])
            rows.append((metrics.dedupe(ranked), gold))
        n = max(len(rows), 1)
        fig = {f"recall@{kk}": sum(metrics.recall_at(r, g, kk) for r, g in rows) / n for kk in KS}
        fig["mrr@10"] = sum(metrics.mrr_at(r, g) for r, g in rows) / n
        fig["ndcg@10"] = sum(metrics.ndcg_at(r, g) for r, g in rows) / n
        fig["latency_p50_ms"] = metrics.percentile(lat, 50)
        fig["latency_p95_ms"] = metrics.percentile(lat, 95)
        out[mode] = fig
    return out
