"""Evaluation metrics: retrieval (recall@k, MRR@10, nDCG@10), answers (EM and
character F1 as in the CMRC 2018 official script), abstention, latency.

Every function is pure and small, so it can be checked by hand."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence

# ---- retrieval ------------------------------------------------------------------


def recall_at(ranked: Sequence[str], gold: set[str], k: int) -> float:
    """1.0 if any gold id is among the first k, else 0.0 (per question)."""
    return 1.0 if any(r in gold for r in ranked[:k]) else 0.0


def mrr_at(ranked: Sequence[str], gold: set[str], k: int = 10) -> float:
    """Reciprocal rank of the first gold id within the first k (0 if none)."""
    for i, r in enumerate(ranked[:k], start=1):
        if r in gold:
            return 1.0 / i
    return 0.0


def ndcg_at(ranked: Sequence[str], gold: set[str], k: int = 10) -> float:
    """Binary-relevance nDCG@k (Järvelin & Kekäläinen 2002): DCG uses
    1/log2(rank+1); the ideal ranks all gold ids first."""
    dcg = sum(1.0 / math.log2(i + 1) for i, r in enumerate(ranked[:k], start=1) if r in gold)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(gold), k) + 1))
    return dcg / ideal if ideal else 0.0


def dedupe(ids: Sequence[str]) -> list[str]:
    """Keep the first occurrence of each id, in order."""
    seen: set[str] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]


# ---- answers (CMRC 2018 official evaluation, re-implemented) ---------------------
# The official script (cmrc2018_evaluate.py, Cui et al. 2019) removes
# punctuation, splits Chinese into single characters while keeping runs of
# Latin letters and digits together, and scores F1 on the longest common
# substring of the two token lists; EM is equality after the same cleaning.

_PUNCT = (set(string.punctuation) - {"%"}) | set(
    "，。：？！；、（）【】《》“”‘’「」『』—…·～〈〉﹏．／－＿＋＝＊＆＾％＄＃＠！～｀｜＼＜＞　 \t\n\r"
)
_LATIN = re.compile(r"[A-Za-z0-9]+(?:[.,][0-9]+)*|[^A-Za-z0-9]")


def segment(text: str) -> list[str]:
    """Mixed segmentation: Latin/digit runs as tokens, every other character
    alone, punctuation and spaces dropped, lower-cased."""
    return [t for t in _LATIN.findall(text.lower()) if t not in _PUNCT and not t.isspace()]


def _lcs_len(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common substring (contiguous)."""
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def char_f1(prediction: str, references: Sequence[str]) -> float:
    """Best F1 of the prediction against any reference (0..1)."""
    pred = segment(prediction)
    best = 0.0
    for ref in references:
        gold = segment(ref)
        lcs = _lcs_len(pred, gold)
        if lcs == 0:
            continue
        p, r = lcs / len(pred), lcs / len(gold)
        best = max(best, 2 * p * r / (p + r))
    return best


def exact_match(prediction: str, references: Sequence[str]) -> float:
    pred = "".join(segment(prediction))
    return 1.0 if any(pred == "".join(segment(r)) for r in references) else 0.0


def contains_gold(prediction: str, references: Sequence[str]) -> float:
    pred = "".join(segment(prediction))
    return 1.0 if any("".join(segment(r)) and "".join(segment(r)) in pred for r in references) else 0.0


# ---- abstention -------------------------------------------------------------------


def abstention(refused: Sequence[bool], answerable: Sequence[bool]) -> dict:
    """Precision and recall of refusing, treating unanswerable questions as
    the positive class; also how many answerable ones were wrongly refused."""
    tp = sum(1 for r, a in zip(refused, answerable) if r and not a)
    fp = sum(1 for r, a in zip(refused, answerable) if r and a)
    fn = sum(1 for r, a in zip(refused, answerable) if not r and not a)
    n_unans = sum(1 for a in answerable if not a)
    precision = tp / (tp + fp) if tp + fp else (1.0 if n_unans == 0 else 0.0)
    recall = tp / n_unans if n_unans else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"refusal_precision": precision, "refusal_recall": recall, "refusal_f1": f1,
            "wrongly_refused": fp, "unanswerable": n_unans, "missed_refusals": fn}


def best_threshold(confidences: Sequence[float], answerable: Sequence[bool],
                   structural: Sequence[bool]) -> tuple[float, dict]:
    """The refusal threshold with the best accuracy (answered when answerable,
    refused when not) over a mixed set; ties go to the lower threshold.

    Args:
        confidences: the answerer's confidence per question.
        answerable: the truth.
        structural: refused whatever the threshold (no candidate survived).
    """
    best_t, best_acc = 0.0, -1.0
    for t in sorted({0.0, *[round(c, 4) for c in confidences]}):
        refused = [s or c < t for c, s in zip(confidences, structural)]
        acc = sum(1 for r, a in zip(refused, answerable) if r != a) / max(len(answerable), 1)
        if acc > best_acc:
            best_t, best_acc = t, acc
    refused = [s or c < best_t for c, s in zip(confidences, structural)]
    return best_t, {"accuracy": best_acc, **abstention(refused, answerable)}


# ---- latency ------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), as numpy's default."""
    if not values:
        return 0.0
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
