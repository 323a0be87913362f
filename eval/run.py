"""One call for ``wenda eval``: pick the set, make sure its index exists, run
every mode (and the LangChain baseline), stamp date/machine/command."""

from __future__ import annotations

import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from ingest.build import IndexSettings
from ingest.embedder import Embedder, EmbeddingCache
from ingest.readers import iter_articles
from ingest.models import Article
from retriever.answer import AnswererSettings
from retriever.search import HybridSettings

from .datasets import EvalSet, load_public, load_seed
from .runner import EVAL_MODES, build_eval_index, run_eval


def machine() -> str:
    """'2 cores, 23.4 GiB, <cpu model>, Python x.y' for reports."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} cores{mem}, {model or platform.machine()}, Python {platform.python_version()}"


def evaluate(*, dataset: str | None, evalset_path: str | None, default_index_dir: Path, corpus_dir: Path,
             embedder: Embedder, data_dir: Path, cache_root: Path, index_settings: IndexSettings,
             answerer_settings: AnswererSettings, modes=EVAL_MODES, limit: int | None = None,
             sample: int | None = None,
             holdout: float = 0.0, baseline: bool = False, split: str | None = None,
             hybrid: HybridSettings | None = None, progress: bool = True, command: str = "",
             store: str | None = None) -> dict:
    """Run an evaluation and return its result dict (see ``runner.run_eval``).

    The seed set (default) runs against ``default_index_dir`` (the user's
    index over the bundled corpus); public sets get their own cached index.
    """
    t0 = time.perf_counter()
    if baseline:
        from .langchain_baseline import require_packages

        require_packages()
    cache = EmbeddingCache(cache_root / "embeddings.sqlite")
    articles: list[Article] | None
    if dataset in (None, "seed"):
        evalset = load_seed(evalset_path) if evalset_path else load_seed()
        if split:
            evalset.questions = [q for q in evalset.questions if q.split == split]
            evalset.name += f"-{split}"
        if limit is not None:
            evalset.questions = evalset.questions[:limit]
        index_dir = default_index_dir
        articles = [a for a in iter_articles([corpus_dir]) if isinstance(a, Article)]
    else:
        evalset = load_public(dataset, data_dir, limit=limit, holdout=holdout, sample=sample)
        index_dir = build_eval_index(evalset, cache_root, embedder, settings=index_settings, progress=progress)
        articles = evalset.articles
        if store is not None:
            index_dir = _copy_to_store(index_dir, store, progress)
    result = run_eval(evalset, index_dir, embedder, modes=modes, settings=answerer_settings, hybrid=hybrid,
                      progress=progress, cache=cache)
    if baseline:
        from ingest.embedder import CachedEmbedder

        from .langchain_baseline import run_baseline

        result["baseline"] = run_baseline(articles, evalset.questions, CachedEmbedder(embedder, cache, query_lru=0),
                                          progress=progress)
    result.update(command=command, date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  machine=machine(), seconds=time.perf_counter() - t0)
    return result


def _copy_to_store(index_dir: Path, store: str, progress: bool) -> str:
    """Evaluate on PostgreSQL: copy the set's cached index there (vectors and
    terms too, so the model never runs for it) and read from the database."""
    import sys

    from ingest.backend import open_backend
    from ingest.pgstore.backend import PgBackend
    from ingest.pgstore.migrate import copy_to_pg

    target = PgBackend(store)
    try:
        articles, passages = copy_to_pg(open_backend(index_dir), target, replace=True)
    finally:
        target.close()
    if progress:
        print(f"copied {articles} articles, {passages} passages to {target.location}", file=sys.stderr)
    return store


__all__ = ["EvalSet", "evaluate", "machine"]
