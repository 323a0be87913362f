"""``wenda bench --scale``: each backend at 10k, 100k (and 1M) passages.

The corpus is synthetic but built from real parts, because uniform random
data misleads (scratch/scale: IVF recall 0.16 on uniform vectors, 0.97 on
structured ones):

* text: the passages of a public set (CMRC 2018 trial by default), cut by
  wenda's splitter and tokenizer; variant j of base passage i resamples 15%
  of its terms from the corpus's unigram distribution and mints new terms
  (2-4 CJK characters) while the vocabulary is below the base set's Heaps
  curve, so the dictionary grows as real news would;
* vectors: the base passages' real embeddings (from the eval cache, embedded
  once otherwise), mixed pairwise plus noise: normalise(l*x_i + (1-l)*x_r +
  s*g), l ~ U(0.6, 1), s = 0.02 (the value scratch/scale measured with);
* queries: the set's real questions with their real embeddings and terms.

Per backend and size: bulk load (through the backend's write session, the
embedder bypassed), compaction, search p50/p95 per mode without the query
embedding, dense recall@10 against exact search, keyword overlap@10 against
exact BM25 (hand-computed over the stored terms, on a sample), add-one and
delete-one p50/p95, the time from a write's return to a new reader seeing it,
disk, and this process's peak RSS.
"""

from __future__ import annotations

import math
import os
import random
import resource
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.backend import PreparedArticle
from ingest.build import content_hash, vector_key
from ingest.contract import Manifest, index_text, terms_for
from ingest.models import Article, Paragraph, Passage
from ingest.splitter import SplitterSettings, split_article
from retriever.search import convex

PASSAGES_PER_ARTICLE = 3
BATCH_ARTICLES = 3_000
SIGMA = 0.02
RESAMPLE = 0.15
HEAPS_BETA, HEAPS_K = 0.647, 14.85
MINT_CHARS = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"


@dataclass
class Base:
    """The real parts the synthetic corpus is made from."""

    name: str
    passages: list[Passage]
    terms: list[list[str]]
    vectors: np.ndarray
    questions: list[tuple[str, list[str], np.ndarray]]


def load_base(dataset: str, data_dir: Path, embedder, cache_path: Path, *, queries: int,
              limit: int | None = None) -> Base:
    """The set's passages and questions, their terms and real embeddings (cached)."""
    from eval.datasets import load_public
    from ingest.embedder import CachedEmbedder, EmbeddingCache
    from retriever.question import analyse

    evalset = load_public(dataset, data_dir, limit=limit)
    cached = CachedEmbedder(embedder, EmbeddingCache(cache_path))
    passages = [p for a in evalset.articles for p in split_article(a)]
    vectors = cached.embed_passages([index_text(p) for p in passages])
    qs = [q.question for q in evalset.questions][:queries]
    qvecs = cached.embed_queries(qs)
    questions = [(q, list(analyse(q).terms), v) for q, v in zip(qs, qvecs)]
    return Base(dataset, passages, [terms_for(p) for p in passages], vectors, questions)


class Synth:
    """Variants of the base passages: resampled and minted terms, mixed vectors."""

    def __init__(self, base: Base, seed: int = 7) -> None:
        self.base = base
        self.rng = random.Random(seed)
        self.nrng = np.random.default_rng(seed)
        self.unigrams = [t for ts in base.terms for t in ts]
        # Heaps' law V(n) = K n^beta as fitted on the pool's 3,622 passages (CMRC dev + trial,
        # DRCD dev) with wenda's tokenizer: 2.8M terms at 1M passages (scratch/scale/heaps.py).
        self.beta, self.k = HEAPS_BETA, HEAPS_K
        self.vocab = set(self.unigrams)
        self.tokens = 0

    def _mint(self) -> str:
        return "".join(self.rng.choice(MINT_CHARS) for _ in range(self.rng.randint(2, 4)))

    def terms(self, j: int) -> list[str]:
        src = self.base.terms[j % len(self.base.terms)]
        out = []
        for t in src:
            if self.rng.random() < RESAMPLE:
                if len(self.vocab) < self.k * max(self.tokens, 1) ** self.beta:
                    t = self._mint()
                    self.vocab.add(t)
                else:
                    t = self.rng.choice(self.unigrams)
            out.append(t)
            self.tokens += 1
        return out

    def vectors(self, idx: np.ndarray) -> np.ndarray:
        real = self.base.vectors
        n = len(idx)
        other = self.nrng.integers(0, len(real), n)
        lam = self.nrng.uniform(0.6, 1.0, (n, 1)).astype(np.float32)
        v = lam * real[idx % len(real)] + (1 - lam) * real[other] + SIGMA * self.nrng.standard_normal(
            (n, real.shape[1])).astype(np.float32)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    def article(self, j: int, model_id: str) -> PreparedArticle:
        """Synthetic article j: PASSAGES_PER_ARTICLE variant passages."""
        aid = f"s{j:08d}"
        idxs = [j * PASSAGES_PER_ARTICLE + i for i in range(PASSAGES_PER_ARTICLE)]
        terms = [self.terms(i) for i in idxs]
        texts = ["".join(t) + "。" for t in terms]
        title = f"合成{j}"
        text = title + "\n" + "\n".join(texts)
        paras, passages, at = [], [], len(title) + 1
        for n, t in enumerate(texts, start=1):
            paras.append(Paragraph(aid, n, None, at, at + len(t), t))
            passages.append(Passage(f"{aid}:{n}", aid, title, None, n, 1, at, at + len(t), t))
            at += len(t) + 1
        article = Article(aid, title, text)
        vecs = self.vectors(np.asarray(idxs))
        keys = tuple(vector_key(model_id, f"{aid}:{n}:{time.time_ns()}") for n in range(len(texts)))
        return PreparedArticle(article, content_hash(article), tuple(paras), tuple(passages),
                               tuple(tuple(t) for t in terms), vecs, keys)


def _ms(xs: list[float]) -> dict:
    if not xs:
        return {"p50": None, "p95": None}
    a = np.asarray(xs) * 1000
    return {"p50": round(float(np.percentile(a, 50)), 3), "p95": round(float(np.percentile(a, 95)), 3)}


def _disk_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def _keyword_overlap(snap, sample) -> dict:
    """Top-10 overlap of the backend's BM25 with an exact one (Lucene, k1=1.2,
    b=0.75), by id and tie-aware (a hit within 1% of the exact 10th score counts:
    the variants of one base passage score alike)."""
    import heapq

    from ingest.contract import BM25

    qterms = set(t for _, terms, _ in sample for t in terms)
    df, n, total = Counter(), 0, 0
    for _, ts in snap.iter_terms():
        n += 1
        total += len(ts)
        df.update(qterms.intersection(ts))
    avgdl = total / max(n, 1)
    idf = {t: math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in qterms}
    heaps: list[list] = [[] for _ in sample]
    k1, b = BM25.k1, BM25.b
    for row, ts in snap.iter_terms():
        present = qterms.intersection(ts)
        if not present:
            continue
        tf = Counter(t for t in ts if t in present)
        norm = k1 * (1 - b + b * len(ts) / avgdl)
        for h, (_, terms, _) in zip(heaps, sample):
            score = sum(idf[q] * tf[q] * (k1 + 1) / (tf[q] + norm) for q in terms if tf[q])
            if score > 0:
                item = (score, -row)
                if len(h) < 300:  # room for the ties of near-identical variants
                    heapq.heappush(h, item)
                elif item > h[0]:
                    heapq.heapreplace(h, item)
    by_id, ties = [], []
    for h, (_, terms, _) in zip(heaps, sample):
        ranked = sorted(((-r, s) for s, r in h), key=lambda x: (-x[1], x[0]))
        top = ranked[:10]
        if not top:
            continue
        exact = dict(ranked)
        got = [s.row for s in snap.keyword_topk(terms, 10)]
        by_id.append(len(set(got) & {r for r, _ in top}) / len(top))
        floor = top[-1][1] * 0.99
        ties.append(min(1.0, sum(exact.get(r, 0.0) >= floor for r in got) / len(top)))
    return {"keyword_overlap10": round(float(np.mean(by_id)), 4) if by_id else None,
            "keyword_overlap10_ties": round(float(np.mean(ties)), 4) if ties else None}


def run_one(kind: str, size: int, base: Base, make_backend: Callable[[], object], *, model_id: str,
            progress: Callable[[str], None], writes: int = 20) -> dict:
    """Build ``size`` passages on a fresh backend of ``kind`` and measure it."""
    synth = Synth(base)
    backend = make_backend()
    manifest = Manifest.new(embed_model=model_id, dim=base.vectors.shape[1], splitter=SplitterSettings())
    n_articles = max(1, size // PASSAGES_PER_ARTICLE)
    out: dict = {"backend": kind, "passages": n_articles * PASSAGES_PER_ARTICLE}
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, n_articles, BATCH_ARTICLES):
        with backend.writer(manifest=manifest, wait=60, kind="bench") as session:
            for j in range(start, min(n_articles, start + BATCH_ARTICLES)):
                session.put(synth.article(j, model_id))
            session.commit()
        progress(f"{kind} {size}: {min(n_articles, start + BATCH_ARTICLES) * PASSAGES_PER_ARTICLE} passages")
    out["bulk_s"] = round(time.perf_counter() - t0, 1)
    out["bulk_cpu_s"] = round(time.process_time() - c0, 1)
    t0 = time.perf_counter()
    report = backend.maintain(force=True)
    out["maintain_s"] = round(time.perf_counter() - t0, 1)
    out["maintain"] = list(report.done)
    out["vocabulary"] = len(synth.vocab)

    snap = backend.snapshot()
    out["dense_kind"] = snap.dense_kind
    lat = {"dense": [], "keyword": [], "hybrid": []}
    for _, terms, v in base.questions:
        t = time.perf_counter()
        d = snap.dense_topk(v, 50)
        lat["dense"].append(time.perf_counter() - t)
        t = time.perf_counter()
        kw = snap.keyword_topk(terms, 50)
        lat["keyword"].append(time.perf_counter() - t)
        t = time.perf_counter()
        fused = convex([(s.row, s.score) for s in snap.dense_topk(v, 50)],
                       [(s.row, s.score) for s in snap.keyword_topk(terms, 50)])
        snap.passages([r for r, _ in fused[:10]])
        lat["hybrid"].append(time.perf_counter() - t)
        del d, kw
    out["search_ms"] = {m: _ms(x) for m, x in lat.items()}

    # Dense recall@10 against exact search over every stored vector.
    rows, vecs = snap.stored_vectors()
    qv = np.stack([v for _, _, v in base.questions])
    truth = []
    for i in range(0, len(qv), 64):
        s = qv[i:i + 64] @ vecs.T
        truth += [list(rows[np.argsort(-r)[:10]]) for r in s]
    got = [[s.row for s in snap.dense_topk(v, 10)] for v in qv]
    out["dense_recall10"] = round(float(np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, truth)])), 4)
    del vecs, rows
    # Keyword overlap@10 against exact BM25 on up to 50 queries, computed by brute force over the
    # stored terms in two streamed passes (statistics, then scores), so memory stays flat at 1M.
    sample = [q for q in base.questions if q[1]][:50]
    out.update(_keyword_overlap(snap, sample))
    snap.close()

    # Add one and delete one article, each a write of its own; then how long until a new reader sees it.
    adds, dels, seen = [], [], []
    for i in range(writes):
        item = synth.article(n_articles + i, model_id)
        t = time.perf_counter()
        with backend.writer(manifest=manifest, wait=60, kind="bench") as session:
            session.put(item)
            session.commit()
        adds.append(time.perf_counter() - t)
        t = time.perf_counter()
        s2 = backend.snapshot()
        if s2.article(item.article.article_id) is not None:
            seen.append(time.perf_counter() - t)
        s2.close()
    step = max(1, n_articles // writes)
    for i in range(min(writes, n_articles)):
        t = time.perf_counter()
        with backend.writer(manifest=manifest, wait=60, kind="bench") as session:
            session.delete(f"s{i * step:08d}")
            session.commit()
        dels.append(time.perf_counter() - t)
    out["add_one_ms"] = _ms(adds)
    out["delete_one_ms"] = _ms(dels)
    out["searchable_after_return_ms"] = _ms(seen)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if hasattr(backend, "path"):
        out["disk_mb"] = _disk_mb(backend.path)
    elif hasattr(backend, "stats"):
        out["disk_mb"] = round((backend.stats() or {"bytes": 0})["bytes"] / 2**20, 1)
    backend.close()
    return out


def parse_sizes(text: str) -> list[int]:
    """'10k,100k,1m' -> [10000, 100000, 1000000]."""
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        mult = 1_000_000 if part.endswith("m") else 1_000 if part.endswith("k") else 1
        num = part.rstrip("km")
        if not num.replace(".", "", 1).isdigit():
            raise ValueError(f"not a size: {part!r} (e.g. 10k, 100k, 1m)")
        out.append(int(float(num) * mult))
    return out


def targets(results: list[dict]) -> dict:
    """The issue's targets, per backend, from the smallest to the largest size measured."""
    out = {}
    for kind in sorted({r["backend"] for r in results}):
        rs = sorted((r for r in results if r["backend"] == kind), key=lambda r: r["passages"])
        lo, hi = rs[0], rs[-1]
        def ratio(key, lo=lo, hi=hi):
            return round(hi[key]["p50"] / lo[key]["p50"], 2) if lo[key]["p50"] else None
        out[kind] = {
            "from": lo["passages"], "to": hi["passages"],
            "add_one_ratio": ratio("add_one_ms"), "delete_one_ratio": ratio("delete_one_ms"),
            "search_p95_ms": {m: hi["search_ms"][m]["p95"] for m in hi["search_ms"]},
            "search_p95_ratio": {m: round(hi["search_ms"][m]["p95"] / lo["search_ms"][m]["p95"], 2)
                                 for m in hi["search_ms"] if lo["search_ms"][m]["p95"]},
            "dense_recall10": hi["dense_recall10"],
            "pass": {"add_delete_<=2x": (ratio("add_one_ms") or 0) <= 2 and (ratio("delete_one_ms") or 0) <= 2,
                     "search_p95_<=30ms": all(v["p95"] <= 30 for v in hi["search_ms"].values()),
                     "recall10_>=0.95": hi["dense_recall10"] >= 0.95},
        }
    return out


def run_scale(*, sizes: list[int], backends: list[str], base: Base, model_id: str, pg_url: str | None,
              work_dir: Path, progress: Callable[[str], None], writes: int = 20) -> dict:
    """Every backend at every size; the result dict written as JSON."""
    from ingest.dirstore.backend import DirBackend

    results = []
    for kind in backends:
        for size in sizes:
            where = Path(tempfile.mkdtemp(prefix=f"scale-{kind}-{size}-", dir=work_dir))
            if kind == "dir":
                make = lambda where=where: DirBackend(where / "index")  # noqa: E731
            else:
                make = _pg_factory(pg_url, where)
            t0 = time.perf_counter()
            r = run_one(kind, size, base, make, model_id=model_id, progress=progress, writes=writes)
            r["total_s"] = round(time.perf_counter() - t0, 1)
            results.append(r)
            progress(f"{kind} {size}: done in {r['total_s']} s")
            shutil.rmtree(where, ignore_errors=True)
    from .bench import _machine_info

    return {"base": {"dataset": base.name, "passages": len(base.passages), "questions": len(base.questions),
                     "vector_noise_sigma": SIGMA, "resampled_share": RESAMPLE},
            "results": results, "targets": targets(results), "machine": _machine_info()}


def _pg_factory(pg_url: str | None, where: Path):
    """A fresh database per run: on the given server, or an embedded one started here."""
    import psycopg

    from ingest.pgstore.backend import PgBackend

    if pg_url is None:
        from .pgdev import _server

        server = _server(where / "pg", "delete")
        admin = server.get_uri()
    else:
        admin = pg_url
    name = f"wenda_scale_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(_with_db(admin, name), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return lambda: PgBackend(_with_db(admin, name))


def _with_db(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def render_table(result: dict) -> str:
    rows = ["| backend | passages | bulk s | search p50/p95 ms dense | keyword | hybrid | recall@10 | kw overlap@10 (ties) "
            "| add one p50 ms | delete one p50 ms | disk MB | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["results"]:
        s = r["search_ms"]
        rows.append(f"| {r['backend']} ({r['dense_kind']}) | {r['passages']:,} | {r['bulk_s']} | "
                    f"{s['dense']['p50']}/{s['dense']['p95']} | {s['keyword']['p50']}/{s['keyword']['p95']} | "
                    f"{s['hybrid']['p50']}/{s['hybrid']['p95']} | {r['dense_recall10']} | {r['keyword_overlap10']} "
                    f"({r['keyword_overlap10_ties']}) | "
                    f"{r['add_one_ms']['p50']} | {r['delete_one_ms']['p50']} | {r.get('disk_mb')} | "
                    f"{r['peak_rss_mb']} |")
    return "\n".join(rows)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for kind in sorted({r["backend"] for r in result["results"]}):
        rs = sorted((r for r in result["results"] if r["backend"] == kind), key=lambda r: r["passages"])
        xs = [r["passages"] for r in rs]
        for mode in ("dense", "keyword", "hybrid"):
            axes[0].plot(xs, [r["search_ms"][mode]["p95"] for r in rs], marker="o", label=f"{kind} {mode}")
        axes[1].plot(xs, [r["add_one_ms"]["p50"] for r in rs], marker="o", label=f"{kind} add one")
        axes[1].plot(xs, [r["delete_one_ms"]["p50"] for r in rs], marker="s", label=f"{kind} delete one")
    for ax, title in zip(axes, ("search p95 (ms, no query embedding)", "write p50 (ms)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("passages")
        ax.set_title(title)
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
