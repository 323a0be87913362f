"""Run an evaluation set through the real retriever and answerer, per
retrieval mode, side by side; compute every figure and keep every
per-question result."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ingest import layout
from ingest.build import IndexSettings, update_index
from ingest.embedder import CachedEmbedder, Embedder, EmbeddingCache
from ingest.errors import BadQueryError
from ingest.tokenize import TOKENIZER_ID
from retriever.answer import Answer, AnswererSettings, ExtractiveAnswerer
from retriever.index import IndexReader
from retriever.question import analyse, content_problem
from retriever.search import HybridSettings

from . import metrics
from .datasets import EvalQuestion, EvalSet

KS = (1, 3, 5, 10)
# "fused" is hybrid without the evidence rerank: the ablation that shows what
# the rerank adds.
EVAL_MODES = ("hybrid", "fused", "dense", "bm25")
# Modes whose answers are scored: the one wenda answers with. The others are
# compared on retrieval only (reading passages is the slow part of a question).
ANSWER_MODES = ("hybrid",)


@dataclass(frozen=True)
class QuestionResult:
    """What happened to one question in one mode."""

    qid: str
    mode: str
    question: str
    answerable: bool
    kind: str
    split: str
    qtype: str
    gold: list[str]
    gold_answers: list[str]
    ranked: list[str]
    answer: str
    short_answer: str | None
    answered: bool
    confidence: float
    structural_refusal: bool
    exact_match: float
    f1: float
    contains_gold: float
    cited: str | None
    citation_correct: bool | None
    quote_matches: bool | None
    latency_ms: float


def _key(passage_id: str, gold: tuple[str, ...]) -> str:
    """A hit as the unit the gold ids use: ``article:paragraph`` or the article."""
    article, _, rest = passage_id.rpartition(":")
    if any(":" in g for g in gold):
        return f"{article}:{rest.split('.')[0]}"
    return article


def _gold_match(key: str, gold: tuple[str, ...]) -> bool:
    return key in gold


def build_eval_index(evalset: EvalSet, cache_root: Path, embedder: Embedder, *, settings: IndexSettings,
                     progress: bool = True) -> Path:
    """Index an eval set's articles once; later runs reuse it (keyed by the
    data files' hash, the model, the splitter settings and the tokenizer). Vectors go to one
    shared cache, so the pool reuses what dev embedded."""
    key = hashlib.sha256(repr((evalset.fingerprint, embedder.model_id, asdict(settings), TOKENIZER_ID))
                         .encode()).hexdigest()[:12]
    index_dir = cache_root / f"{evalset.name}-{key}"
    if layout.current_generation(index_dir) is None:
        if progress:
            print(f"indexing {len(evalset.articles)} articles for {evalset.name} ...", file=sys.stderr)
        update_index(index_dir, embedder, upserts=evalset.articles, settings=settings, progress=progress,
                     cache_path=cache_root / "embeddings.sqlite")
    return index_dir


def question_type(question: str) -> str:
    """The row of the per-type table a question falls in: its answer kind
    (retriever/question.py), "english" for a question without Chinese, or
    "junk" for input wenda refuses before retrieval."""
    if not question.strip() or content_problem(question):
        return "junk"
    q = analyse(question)
    return "english" if q.crosslingual else q.kind


def _one(answerer: ExtractiveAnswerer, reader: IndexReader, q: EvalQuestion, mode: str,
         thresholds: ExtractiveAnswerer, *, answer: bool = True) -> QuestionResult:
    t0 = time.perf_counter()
    try:
        if answer:
            ans = answerer.ask(q.question, k=10)
        else:
            hits = answerer.retriever.search(q.question, 10)
            ans = Answer(q.question, "", False, 0.0, [], hits)
    except BadQueryError:
        ans = Answer(q.question, "", False, 0.0, [], [])
    latency = (time.perf_counter() - t0) * 1000
    ranked = metrics.dedupe([_key(h.passage_id, q.gold) for h in ans.hits])
    # The answerer ran with thresholds at 0 (so the sweep sees every
    # confidence); the production thresholds decide here.
    try:
        threshold = thresholds.threshold(analyse(q.question))
    except BadQueryError:
        threshold = 1.0
    structural = not ans.answerable
    answered = not structural and ans.confidence >= threshold
    text = ans.answer if answered else ""
    cited = correct = quote_ok = None
    if answered and ans.citations:
        c = ans.citations[0]
        cited = _key(c.passage_id, q.gold)
        correct = _gold_match(cited, q.gold) if q.answerable else False
        article = reader.store.article(c.article_id)
        quote_ok = article is not None and article.text[c.start:c.end] == c.quote
    return QuestionResult(
        q.qid, mode, q.question, q.answerable, q.kind, q.split, question_type(q.question), list(q.gold),
        list(q.answers), ranked[:10], text, ans.short_answer if answered else None, answered, ans.confidence, structural,
        metrics.exact_match(text, q.answers) if q.answerable else 0.0,
        metrics.char_f1(text, q.answers) if q.answerable else 0.0,
        metrics.contains_gold(text, q.answers) if q.answerable else 0.0,
        cited, correct, quote_ok, latency,
    )


def summarize(results: list[QuestionResult], settings: AnswererSettings, *, answers: bool = True) -> dict:
    """Every figure for one mode (retrieval figures only when ``answers`` is false)."""
    ans = [r for r in results if r.answerable]
    n = max(len(ans), 1)
    gold = [set(r.gold) for r in ans]
    out: dict = {"questions": len(results), "answerable": len(ans)}
    for k in KS:
        out[f"recall@{k}"] = sum(metrics.recall_at(r.ranked, g, k) for r, g in zip(ans, gold)) / n
    out["mrr@10"] = sum(metrics.mrr_at(r.ranked, g, 10) for r, g in zip(ans, gold)) / n
    out["ndcg@10"] = sum(metrics.ndcg_at(r.ranked, g, 10) for r, g in zip(ans, gold)) / n
    lat = [r.latency_ms for r in results]
    out["latency_p50_ms"] = metrics.percentile(lat, 50)
    out["latency_p95_ms"] = metrics.percentile(lat, 95)
    if not answers:
        return out
    out["exact_match"] = sum(r.exact_match for r in ans) / n
    out["f1"] = sum(r.f1 for r in ans) / n
    out["contains_gold"] = sum(r.contains_gold for r in ans) / n
    out["short_shown"] = sum(r.short_answer is not None for r in ans) / n
    answered_ans = [r for r in ans if r.answered]
    out["answered"] = sum(r.answered for r in results)
    out["citation_correct"] = (sum(bool(r.citation_correct) for r in answered_ans) / len(answered_ans)
                               if answered_ans else 0.0)
    quoted = [r for r in results if r.quote_matches is not None]
    out["quote_matches"] = sum(bool(r.quote_matches) for r in quoted) / len(quoted) if quoted else 1.0
    out.update(metrics.abstention([not r.answered for r in results], [r.answerable for r in results]))
    out["by_type"] = by_type(results)
    if any(not r.answerable for r in results):
        zh = [r for r in results if r.qtype != "english"]
        t, fit = metrics.best_threshold([r.confidence for r in zh], [r.answerable for r in zh],
                                        [r.structural_refusal for r in zh])
        out["best_threshold"] = {"min_confidence": t, **fit}
        out["threshold_sweep"] = _sweep(zh)
    return out


def by_type(results: list[QuestionResult]) -> dict[str, dict]:
    """Per question type (count, money, ..., english): how many, the share whose
    shown answer holds a gold answer, EM, F1 (over answerable questions, as the
    totals) and the refusal errors (answerable refused, unanswerable answered)."""
    out = {}
    for qtype in sorted({r.qtype for r in results}):
        rows = [r for r in results if r.qtype == qtype]
        ans = [r for r in rows if r.answerable]
        n = max(len(ans), 1)
        out[qtype] = {
            "questions": len(rows), "answerable": len(ans),
            "contains_gold": sum(r.contains_gold for r in ans) / n,
            "exact_match": sum(r.exact_match for r in ans) / n, "f1": sum(r.f1 for r in ans) / n,
            "short_shown": sum(r.short_answer is not None for r in ans) / n,
            "wrongly_refused": sum(1 for r in ans if not r.answered),
            "missed_refusals": sum(1 for r in rows if not r.answerable and r.answered),
            "unanswerable": len(rows) - len(ans),
        }
    return out


def _sweep(results: list[QuestionResult]) -> list[dict]:
    rows = []
    for i in range(5, 100):
        t = i / 100
        refused = [r.structural_refusal or r.confidence < t for r in results]
        rows.append({"threshold": t, **metrics.abstention(refused, [r.answerable for r in results])})
    return rows


def run_eval(evalset: EvalSet, index_dir: Path, embedder: Embedder, *, modes=EVAL_MODES,
             settings: AnswererSettings | None = None, hybrid: HybridSettings | None = None,
             progress: bool = True, cache: EmbeddingCache | None = None) -> dict:
    """Evaluate every question in every mode.

    Args:
        evalset: the questions.
        index_dir: an index holding the eval set's articles.
        embedder: the index's embedding model.
        modes: retrieval modes to compare in one run.
        settings: answerer settings (thresholds applied as in production).
        cache: embedding cache for sentences the answerer embeds.

    Returns:
        ``{"modes": {mode: figures}, "results": [per-question dicts], "load_seconds": …}``.
    """
    from tqdm import tqdm

    settings = settings or AnswererSettings()
    hybrid = hybrid or HybridSettings()
    fused = dataclasses.replace(hybrid, rerank_weight=0.0)
    raw = dataclasses.replace(settings, min_confidence=0.0, min_confidence_crosslingual=0.0)
    cache = cache or EmbeddingCache(Path(index_dir) / layout.CACHE)
    # The production thresholds (settings, or the model's own) decide what is answered.
    thresholds = ExtractiveAnswerer(IndexReader(index_dir, CachedEmbedder(embedder, cache)), settings=settings)
    summary, results, load_seconds = {}, [], None
    for mode in modes:
        # A fresh reader per mode: no query vector is reused from another mode.
        # Sentence vectors come from the shared content-hash cache, as in service.
        t0 = time.perf_counter()
        reader = IndexReader(index_dir, CachedEmbedder(embedder, cache))
        reader.faiss_index, reader.bm25  # noqa: B018 - load now, so load time is measured apart
        load_seconds = load_seconds if load_seconds is not None else time.perf_counter() - t0
        if mode == "fused":
            answerer = ExtractiveAnswerer(reader, mode="hybrid", settings=raw, hybrid=fused)
        else:
            answerer = ExtractiveAnswerer(reader, mode=mode, settings=raw, hybrid=hybrid)
        bar = tqdm(evalset.questions, desc=f"eval {evalset.name} [{mode}]", unit="q", file=sys.stderr,
                   disable=not progress, dynamic_ncols=True)
        answer = mode in ANSWER_MODES
        mode_results = [_one(answerer, reader, q, mode, thresholds, answer=answer) for q in bar]
        summary[mode] = summarize(mode_results, settings, answers=answer)
        results += mode_results
    return {"dataset": evalset.name, "notes": evalset.notes, "load_seconds": load_seconds,
            "hybrid": asdict(hybrid), "fused": asdict(fused),
            "index": {"passages": reader.passage_count, "articles": reader.article_count,
                      "faiss_index": reader.manifest["faiss_index"], "embed_model": reader.manifest["embed_model"]},
            "settings": {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
                         "effective": {"min_confidence": thresholds.threshold(analyse("问")),
                                       "min_confidence_crosslingual": thresholds.threshold(analyse("what")),
                                       "short_confidence": thresholds.short_threshold()}},
            "modes": summary, "results": [asdict(r) for r in results]}
