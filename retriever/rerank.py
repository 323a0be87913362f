"""Evidence rerank: reorder the fused top candidates by how much of the
question's wording one place in the passage holds.

Reading-comprehension questions are written against one or two sentences of
a paragraph. BM25 and the passage embedding score the paragraph as a whole,
so a sibling paragraph of the same article, which shares the topic and the
title, often ties with the one that answers. Character bigrams of the
question, counted inside the best window of consecutive sentences, separate
them. Bigrams rather than jieba words, because they need no segmentation: they
work on names jieba does not know. Both sides are folded to Simplified
script first (ingest/script.py), so a question in one script matches
passages in the other.

The heading or title a passage sits under counts as found in every window:
siblings share it, so the words that set them apart decide. (Tuned on the
CMRC 2018 trial split and its two stand-ins, see eval/datasets.py: the title
as context lifted R@1 on the sibling stand-in from 0.904 to 0.929; weighting
bigrams by their IDF among the candidates did not help and was dropped.)

The rerank touches only the top ``depth`` fused candidates: one store read and
some set operations per candidate, no model call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ingest.models import Passage
from ingest.script import fold_script
from ingest.splitter import sentence_spans

# Question words and particles (in Simplified: text is folded first): they are
# in every question and in no answer, so they would only dilute the coverage.
QUESTION_WORDS = tuple(sorted(
    """什么 甚么 哪个 哪些 哪里 哪儿 哪一 哪 谁 几 多少 多久 如何 怎样 怎么
    为什么 为何 何时 何地 何处 是否 是不是 吗 呢 吧 啊 呀""".split(),
    key=len, reverse=True,
))
_SPLIT = re.compile("|".join(map(re.escape, QUESTION_WORDS)) + r"|[^\w]|_", re.UNICODE)
_PUNCT = re.compile(r"[^\w]+|_+", re.UNICODE)


def question_bigrams(question: str) -> frozenset[str]:
    """Character bigrams of a question's content: question words and
    punctuation cut it into pieces; Latin words and numbers count as one unit
    each, Chinese characters pair up inside a piece. (``Question.bigrams``
    holds this for an analysed question.)"""
    out: set[str] = set()
    for piece in _SPLIT.split(fold_script(question).lower()):
        out |= _bigrams(piece)
    return frozenset(out)


_HAN = "\u3400-\u9fff\uf900-\ufaff"
# A unit is one Chinese character, or a run of other letters and digits.
_UNIT = re.compile(f"[{_HAN}]|[^\\W_{_HAN}]+")


def _bigrams(text: str) -> set[str]:
    """Bigrams of units (a Chinese character, or a run of letters and digits)
    inside each run between punctuation or spaces: none spans a sentence end."""
    out: set[str] = set()
    for piece in _PUNCT.split(text):
        units = _UNIT.findall(piece)
        out.update(map(str.__add__, units, units[1:]))
    return out


def evidence_coverage(qbigrams: frozenset[str], text: str, width: int = 1, *, context: str = "") -> float:
    """How much of the question one place in ``text`` holds.

    Args:
        qbigrams: ``question_bigrams(question)``.
        text: the passage text.
        width: a window is one sentence with ``width`` sentences either side.
        context: the title and heading the passage sits under; its bigrams
            count as found in every window.

    Returns:
        The share (0..1) of ``qbigrams`` in the best window; 0 when there are
        none (a one-word or English question).
    """
    if not qbigrams:
        return 0.0
    given = qbigrams & _bigrams(fold_script(context).lower()) if context else frozenset()
    lowered = fold_script(text).lower()
    # No bigram spans a sentence end, so a window's bigrams are the union of
    # its sentences': each sentence is cut once, not once per window.
    found = [qbigrams & _bigrams(lowered[s:e]) for s, e in sentence_spans(lowered)] or [frozenset()]
    best = len(given)
    for i in range(len(found)):
        window = given.union(*found[max(0, i - width):i + width + 1])
        best = max(best, len(window))
        if best == len(qbigrams):
            break
    return best / len(qbigrams)


def rerank(qbigrams: frozenset[str], scored: Sequence[tuple[int, float]], passages: dict[int, Passage], *,
           weight: float, width: int = 1) -> list[tuple[int, float]]:
    """Reorder fused hits by evidence coverage.

    Args:
        qbigrams: the question's bigrams (``Question.bigrams``).
        scored: (row id, fused score) pairs, on a 0..1 scale.
        passages: the passages of those rows (a row without one keeps its score).
        weight: added score per unit of coverage; 0 returns ``scored`` as is.
        width: sentences either side of a window's centre.

    Returns:
        (row id, score + weight * coverage) pairs, best first; ties keep their
        order. The title and section heading count as context (found in every
        window).
    """
    qb = qbigrams
    if not qb or weight == 0:
        return list(scored)
    out = []
    for row, score in scored:
        p = passages.get(row)
        if p is None:
            out.append((row, score))
            continue
        context = f"{p.title}\n{p.section}" if p.section else p.title
        out.append((row, score + weight * evidence_coverage(qb, p.text, width, context=context)))
    return sorted(out, key=lambda rs: -rs[1])
