"""Fit the answerer's two small models on the CMRC 2018 trial split.

    python -m eval.train_answerer [--work .wenda/train] [--out retriever/models/answerer.json]

1. The span reader is trained on the trial contexts of one half (``even``:
   ``eval.train_reader --fold even``); that reader is the one wenda ships
   (retriever/models/reader.npz). The answerer's models are fitted only on
   questions of the other half (``odd``), which the reader never saw, so they
   learn how far to trust the reader on a user's question, not on its own
   training data.
2. The trial articles are indexed with 30% of the contexts held out; every
   odd-half question runs through retrieval and the reader as in
   ``wenda ask``. Questions whose context is held out are unanswerable, and so
   are made-up ones (``make_negatives``): a trial question with its place,
   year or name swapped for one no trial article mentions, and off-topic
   questions.
3. The candidate model learns which proposed span is right (``good_span``);
   the answerability model learns, from the winning candidate and the
   retrieval scores, whether the articles answer at all. Both are logistic
   regressions (numpy, L2, Newton's method), written as JSON with the
   refusal threshold chosen on the same held-out data for the best accuracy
   while refusing at most 2% of answerable questions. The short span is shown
   when the candidate model gives it even odds of being right (0.5); the
   threshold that would score best on the trial is recorded, not used.

The dev sets are never read. The crosslingual threshold is chosen on the seed
set's tune half (English questions), the only English questions we may tune on.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ingest.build import IndexSettings
from ingest.embedder import CachedEmbedder, EmbeddingCache, load_embedder
from ingest.errors import BadQueryError
from retriever.answer import (
    ANSWER_FEATURES,
    ANSWERER_JSON,
    CANDIDATE_FEATURES,
    AnswererModels,
    Candidate,
    ExtractiveAnswerer,
    LogisticModel,
)
from retriever.index import IndexReader
from retriever.question import Question, analyse
from retriever.reader import SpanReader
from retriever.search import prepare

from . import metrics
from .datasets import DEFAULT_DATA_DIR, REPO, load_public, load_seed
from .runner import build_eval_index
from .train_reader import context_fold, train

SEED = 13
# Show the short span when the candidate model thinks it more likely right than wrong.
SHORT_CONFIDENCE = 0.5
HOLDOUT = 0.3
# Places, years and names that no CMRC 2018 trial context mentions (checked
# when the negatives are made): a question swapped to one of them has no answer.
OTHER_PLACES = "黑龙江 内蒙古 宁夏 青海 甘肃 海南 贵州 山西 吉林 辽宁 河北 安徽 江西 湖南 云南 西藏 新疆 广西 福建 浙江".split()
OTHER_NAMES = "周建华 王秀兰 陈志强 刘海燕 赵国庆 孙丽娟 何文斌 罗小梅 梁振宇 郑佳怡".split()
OFF_TOPIC = [
    "明天北京的天气怎么样？", "怎样在家里烤面包？", "世界上最高的山是哪座？", "如何学好英语口语？",
    "今年的春节是几月几号？", "苹果手机多少钱一部？", "怎么治疗感冒最快？", "足球世界杯冠军是哪个国家？",
    "推荐几本好看的小说", "火星上有没有水？", "猫为什么喜欢晒太阳？", "高考作文怎么写才能得高分？",
    "股票明天会涨吗？", "怎么做红烧肉？", "地球到月球有多远？", "量子计算机的原理是什么？",
    "人民币兑美元的汇率是多少？", "马拉松全程有多少公里？", "长城有多长？", "谁发明了电话？",
    "How do I bake sourdough bread at home?", "What is the capital of France?", "Who won the 2018 World Cup?",
    "How tall is Mount Everest?", "What is the best programming language?", "How do vaccines work?",
    "When is the next solar eclipse?", "How many planets are in the solar system?",
]


@dataclass
class Row:
    """One question's pass through the pipeline, for fitting."""

    qid: str
    question: Question
    answerable: bool
    answers: tuple[str, ...]
    fold: str
    candidates: list[Candidate]
    labels: list[int]
    f1s: list[float]
    contains: list[float]
    sentence_contains: list[float]
    pairs: list


def fit_logistic(x: np.ndarray, y: np.ndarray, names: list[str], *, l2: float = 1.0,
                 weights: np.ndarray | None = None) -> dict:
    """L2-regularised logistic regression by Newton's method on standardised
    features; returns the JSON spec ``LogisticModel`` reads."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    z1 = np.hstack([z, np.ones((len(z), 1))])
    w = np.zeros(z1.shape[1])
    sw = np.ones(len(y)) if weights is None else weights
    reg = np.full(z1.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(z1 @ w, -50, 50)))
        grad = z1.T @ (sw * (p - y)) + reg * w
        hess = (z1 * (sw * p * (1 - p))[:, None]).T @ z1 + np.diag(reg) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return {"features": names, "mean": mean.round(6).tolist(), "scale": scale.round(6).tolist(),
            "weights": w[:-1].round(6).tolist(), "bias": round(float(w[-1]), 6)}


def make_negatives(questions, corpus_text: str, rng: random.Random) -> list[tuple[str, str, str]]:
    """(qid, question, source fold) of made-up unanswerable questions."""
    out = []
    for q in questions:
        a = analyse(q.question)
        text = q.question
        made = None
        if a.places:
            place = next((p for p in a.places if p in text), None)
            other = [p for p in OTHER_PLACES if p not in corpus_text]
            if place and other:
                made = text.replace(place, rng.choice(other), 1)
        elif re.search(r"(1[89]\d\d|20[0-2]\d)年", text):
            m = re.search(r"(1[89]\d\d|20[0-2]\d)年", text)
            year = int(m.group(1)) + rng.choice([-7, -5, 5, 7])
            if f"{year}年" not in corpus_text:
                made = text[:m.start()] + f"{year}年" + text[m.end():]
        elif a.entities:
            name = next((e for e in a.entities if e in text and len(e) <= 4), None)
            other = [n for n in OTHER_NAMES if n not in corpus_text]
            if name and other:
                made = text.replace(name, rng.choice(other), 1)
        if made and made != text:
            out.append((f"{q.qid}-swap", made, context_fold(q.gold[0]) if q.gold else "even"))
    for i, text in enumerate(OFF_TOPIC):
        out.append((f"offtopic-{i}", text, "even" if i % 2 else "odd"))
    return out


def good_span(span: str, answers: tuple[str, ...]) -> bool:
    """A candidate counts as right when it overlaps a gold answer well
    (character F1 >= 0.5), or lies inside one and is a fair part of it: the
    trial's gold answers are often whole clauses, and the figure or name
    inside the clause answers the question as well (玩家用什么泡封敌人 ->
    水枪、小枪、锤子或是水炸弹 inside 玩家以水枪、小枪、锤子或是水炸弹泡封敌人)."""
    if metrics.char_f1(span, answers) >= 0.5:
        return True
    s = "".join(metrics.segment(span))
    return any(s and s in (g := "".join(metrics.segment(a))) and len(s) >= max(2, 0.25 * len(g)) for a in answers)


def collect(ans: ExtractiveAnswerer, items, progress: bool) -> list[Row]:
    """Run every question through retrieval and the reader; label each
    candidate (``good_span``)."""
    rows = []
    t0 = time.perf_counter()
    for n, (qid, text, answerable, answers, fold) in enumerate(items):
        try:
            q, _ = prepare(text, 5)
        except BadQueryError:
            continue
        pairs = ans.retriever.search_passages(q, ans.settings.passages)
        top = pairs[: ans.settings.read_passages]
        cands = ans.candidates(q, top, ans.read(q, [p for _, p in top])) if top else []
        f1s, labels, contains, sent = [], [], [], []
        for c in cands:
            p = c.passage
            span = p.text[c.start - p.start:c.end - p.start]
            sentence = p.text[c.sentence_start - p.start:c.sentence_end - p.start]
            f1s.append(metrics.char_f1(span, answers) if answerable else 0.0)
            labels.append(int(answerable and good_span(span, answers)))
            contains.append(metrics.contains_gold(span, answers) if answerable else 0.0)
            sent.append(metrics.contains_gold(sentence, answers) if answerable else 0.0)
        rows.append(Row(qid, q, answerable, answers, fold, cands, labels, f1s, contains, sent, pairs))
        if progress and n % 100 == 0:
            print(f"  read {n}/{len(items)} questions ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return rows


def _matrix(dicts: list[dict], names: list[str]) -> np.ndarray:
    return np.array([[float(d.get(n, 0.0)) for n in names] for d in dicts])


def fit(rows: list[Row], answerer: ExtractiveAnswerer, embed_question) -> tuple[dict, dict, list[dict]]:
    """The candidate model, then the answerability model on each question's winner."""
    feats, ys = [], []
    for r in rows:
        for c, y in zip(r.candidates, r.labels):
            if r.answerable:
                feats.append(answerer._with_kind(r.question, c.features))
                ys.append(y)
    cand_spec = fit_logistic(_matrix(feats, CANDIDATE_FEATURES), np.array(ys, dtype=float),
                             list(CANDIDATE_FEATURES))
    cand_model = LogisticModel(cand_spec)
    scored = []
    for r in rows:
        if not r.candidates:
            scored.append(None)
            continue
        probs = [cand_model.predict(answerer._with_kind(r.question, c.features)) for c in r.candidates]
        i = int(np.argmax(probs))
        best = dataclasses.replace(r.candidates[i], score=probs[i])
        f = answerer.answer_features(r.question, best, r.pairs, embed_question(r.question.folded))
        scored.append({"i": i, "features": f, "prob": probs[i]})
    ans_x = [s["features"] for s in scored if s]
    ans_y = [float(r.answerable) for r, s in zip(rows, scored) if s]
    ans_spec = fit_logistic(_matrix(ans_x, ANSWER_FEATURES), np.array(ans_y), list(ANSWER_FEATURES))
    return cand_spec, ans_spec, scored


def choose_thresholds(rows: list[Row], scored: list[dict | None], ans_model: LogisticModel) -> dict:
    """Refusal threshold: best accuracy with at most 2% of answerable questions
    refused; short-answer threshold: even odds (``SHORT_CONFIDENCE``)."""
    conf = [ans_model.predict(s["features"]) if s else 0.0 for s in scored]
    n_ans = sum(r.answerable for r in rows)
    best_t, best_acc = 0.5, -1.0
    for t in np.arange(0.05, 0.96, 0.01):
        refused = [c < t for c in conf]
        wrong = sum(1 for r, x in zip(rows, refused) if x and r.answerable)
        acc = sum(1 for r, x in zip(rows, refused) if x != (not r.answerable)) / len(rows)
        if wrong <= 0.02 * n_ans and acc > best_acc:
            best_t, best_acc = float(t), acc
    refused = [c < best_t for c in conf]
    fig = metrics.abstention(refused, [r.answerable for r in rows])
    def shown(s_t: float) -> dict:
        cont = f1 = 0.0
        for r, s in zip(rows, scored):
            if not r.answerable or not s:
                continue
            i = s["i"]
            if s["prob"] >= s_t:
                cont += r.contains[i]
                f1 += r.f1s[i]
            else:
                c = r.candidates[i]
                sentence = c.passage.text[c.sentence_start - c.passage.start:c.sentence_end - c.passage.start]
                cont += r.sentence_contains[i]
                f1 += metrics.char_f1(sentence, r.answers)
        return {"contains": round(cont / max(n_ans, 1), 4), "f1": round(f1 / max(n_ans, 1), 4)}

    # The short span is shown when the candidate model gives it even odds or
    # better of being right. The threshold that scores best on the trial is
    # recorded but not used: the trial's gold answers are often whole clauses,
    # which rewards showing the sentence more than a user's question (or the
    # dev sets' short answers) would.
    best_s = SHORT_CONFIDENCE
    trial_best = max(np.arange(0.05, 0.96, 0.01), key=lambda t: sum(shown(float(t)).values()))
    shown_fig = {**shown(best_s), "trial_best_threshold": round(float(trial_best), 2),
                 "at_trial_best": shown(float(trial_best))}
    return {"min_confidence": round(best_t, 2), "short_confidence": round(best_s, 2),
            "refusal": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in fig.items()},
            "shown": shown_fig}


def crosslingual_threshold(answerer: ExtractiveAnswerer, ans_model: LogisticModel, embed_question) -> float:
    """The refusal threshold for questions without Chinese, chosen on the seed
    set's tune half (its English questions, answerable and not): the midpoint
    between the lowest-scored answerable and highest-scored unanswerable, or
    the best accuracy when they overlap."""
    seed = load_seed()
    conf, truth = [], []
    for q in seed.questions:
        if q.split != "tune" or q.lang != "en":
            continue
        try:
            a = answerer.ask(q.question)
        except BadQueryError:
            continue  # content-free input is refused before any threshold
        conf.append(a.confidence)
        truth.append(q.answerable)
    best_t, best_acc = 0.5, -1.0
    for t in sorted({0.0, *conf, 1.0}):
        acc = sum((c >= t) == a for c, a in zip(conf, truth))
        if acc > best_acc:
            best_t, best_acc = t, acc
    return round(float(best_t), 4)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.train_answerer", description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path(".wenda/train"), help="Fold readers and the trial index.")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="Folder holding cmrc2018/.")
    ap.add_argument("--out", type=Path, default=ANSWERER_JSON, help="Where to write the models.")

    args = ap.parse_args(argv)
    rng = random.Random(SEED)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    stem = work / "reader-even"
    if not stem.with_suffix(".npz").exists():
        train(fold="even", data_dir=args.data_dir, out=stem)
    span_reader = SpanReader(stem.with_suffix(".npz"), stem.with_suffix(".json"))
    evalset = load_public("cmrc2018-trial", args.data_dir, holdout=HOLDOUT, seed=SEED)
    embedder = load_embedder()
    index_dir = build_eval_index(evalset, work, embedder, settings=IndexSettings())
    cache = EmbeddingCache(work / "embeddings.sqlite")
    reader = IndexReader(index_dir, CachedEmbedder(embedder, cache))
    answerer = ExtractiveAnswerer(reader, reader=span_reader, models=None)
    full = load_public("cmrc2018-trial", args.data_dir)
    corpus_text = "\n".join(a.title + a.text for a in full.articles or [])
    items = [(q.qid, q.question, q.answerable, q.answers,
              context_fold(q.gold[0]) if q.gold else context_fold(q.qid.rsplit("_QUERY", 1)[0]))
             for q in evalset.questions]
    kept = [q for q in evalset.questions if q.answerable]
    items += [(qid, text, False, (), fold) for qid, text, fold in make_negatives(kept, corpus_text, rng)]
    # Only questions the reader never saw: the odd half (off-topic questions
    # were never in any half, all of them count).
    items = [i for i in items if i[4] == "odd" or i[0].startswith("offtopic-")]
    print(f"train_answerer: {len(items)} questions ({sum(not i[2] for i in items)} unanswerable)", file=sys.stderr)
    rows = collect(answerer, items, progress=True)
    embed_question = answerer.dense.query_vector
    cand_spec, ans_spec, scored = fit(rows, answerer, embed_question)
    ans_model = LogisticModel(ans_spec)
    thresholds = choose_thresholds(rows, scored, ans_model)
    spec = {"format": "wenda-answerer-1", "candidate": cand_spec, "answerable": ans_spec,
            "thresholds": {"min_confidence": thresholds["min_confidence"], "min_confidence_crosslingual": 0.5,
                           "short_confidence": thresholds["short_confidence"]},
            "trained_on": {"data": "CMRC 2018 trial split (cmrc2018_trial.json), 30% of contexts held out "
                                   "(seed 13); questions of the odd half of the contexts, which the reader (trained on "
                                   "the even half) never saw, plus made-up unanswerable questions",
                           "questions": len(rows), "unanswerable": sum(not r.answerable for r in rows),
                           "candidates": sum(len(r.candidates) for r in rows)},
            "figures_held_out": {k: v for k, v in thresholds.items() if k in ("refusal", "shown")},
            "command": "python -m eval.train_answerer",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(spec, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    # The English threshold needs the fitted models and the shipped reader.
    models = AnswererModels.load(args.out)
    seed_answerer_dir = work / "seed-index"
    from ingest.build import update_index
    from ingest.readers import iter_articles
    if not seed_answerer_dir.exists():
        update_index(seed_answerer_dir, embedder, upserts=list(iter_articles([REPO / "corpus"])),
                     cache_path=work / "embeddings.sqlite")
    seed_reader = IndexReader(seed_answerer_dir, CachedEmbedder(embedder, cache))
    en = crosslingual_threshold(ExtractiveAnswerer(seed_reader, reader=span_reader, models=models), models.answerable, embed_question)
    spec["thresholds"]["min_confidence_crosslingual"] = en
    args.out.write_text(json.dumps(spec, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"train_answerer: wrote {args.out}: thresholds {spec['thresholds']}, "
          f"held-out {spec['figures_held_out']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
