"""``wenda eval --answerer llm``: the LLM's answers scored with the answer
metrics of the extractive eval (gold in the shown answer, character F1,
abstention), plus how its sentences fared in the check:

- ``sentences.supported_share``: the share of the LLM's sentences that the
  check kept, and the reasons the others were dropped;
- ``caught``: how many unsupported sentences the check catches. Real
  unsupported sentences are unlabelled, so each kept sentence that states a
  figure is made wrong twice and checked again against the same passages:
  its first figure with the last digit changed (a made-up figure), and its
  citation moved to a passage without that figure (a wrong citation).
  ``caught_share`` is the share of these made-up sentences the check drops.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence

from retriever.generate import GeneratedAnswer, _values, check_sentence, cited_numbers

from .datasets import EvalQuestion
from .metrics import abstention, char_f1, contains_gold

_MARK = re.compile(r"\s*[\[［【]\s*\d{1,3}(?:\s*[,，、]\s*\d{1,3})*\s*[\]］】]")
_ARABIC = re.compile(r"\d+(?:\.\d+)?")
_REASONS = (("it cites no passage", "no citation"), ("it cites [", "no such passage"),
            ("it is written in", "language"), ("the figure", "figure"), ("the date", "date"),
            ("the name", "name"), ("only", "wording"))
_FALLBACKS = (("The LLM failed", "llm error"), ("cited no passage", "no citation"),
              ("None of the LLM", "nothing supported"), ("so the LLM was not asked", "not asked"))


def _kind(text: str | None, table) -> str:
    return next((kind for prefix, kind in table if text and prefix in text), "other")


def figure_mutant(sentence: str) -> str | None:
    """The sentence with its first Arabic figure's last digit changed, or None."""
    body = _MARK.sub("", sentence)
    m = _ARABIC.search(body)
    if not m:
        return None
    pos = sentence.index(m.group()) + len(m.group()) - 1
    digit = int(sentence[pos])
    return sentence[:pos] + str((digit + 1) % 10) + sentence[pos + 1:]


def citation_mutant(sentence: str, passages: Sequence) -> str | None:
    """The sentence citing, instead, the first passage that lacks one of its
    figures, or None (no figure, or every passage has them)."""
    body = _MARK.sub("", sentence).strip()
    values = _values(body)
    if not values:
        return None
    cited = set(cited_numbers(sentence))
    for n, p in enumerate(passages, start=1):
        if n not in cited and not values <= _values(f"{p.title}\n{p.section or ''}\n{p.text}"):
            return f"{body}[{n}]"
    return None


def evaluate_llm(questions: Sequence[EvalQuestion], ask: Callable[[str], GeneratedAnswer], *, name: str = "seed",
                 on_question: Callable[[int, int], None] | None = None) -> dict:
    """Ask every question through ``ask`` (the engine's LLM answerer) and score.

    Args:
        questions: the eval questions.
        ask: question -> checked LLM answer (or its fallback).
        name: the eval set's name, for the report.
        on_question: told (done, total) after each question.

    Returns:
        The report as a dict (see the module docstring).
    """
    rows, sentences, reasons, fallbacks = [], [], Counter(), Counter()
    mutants = {"figure": [0, 0], "citation": [0, 0]}  # made, caught
    t0 = time.perf_counter()
    for i, q in enumerate(questions, start=1):
        a = ask(q.question)
        lang = "zh" if re.search(r"[\u3400-\u9fff]", q.question) else "en"
        for s in a.sentences:
            sentences.append(s.supported)
            if not s.supported:
                reasons[_kind(s.reason, _REASONS)] += 1
                continue
            for kind, mutant in (("figure", figure_mutant(s.text)), ("citation", citation_mutant(s.text, a.passages))):
                if mutant is not None and a.passages:
                    mutants[kind][0] += 1
                    mutants[kind][1] += not check_sentence(mutant, a.passages, lang=lang).supported
        if a.fallback:
            fallbacks[_kind(a.fallback, _FALLBACKS)] += 1
        rows.append({"id": q.qid, "question": q.question, "answerable_gold": q.answerable, "answer": a.answer,
                     "answerable": a.answerable, "answerer": a.answerer, "fallback": a.fallback,
                     "sentences": [{"text": s.text, "supported": s.supported, "reason": s.reason} for s in a.sentences],
                     "contains_gold": contains_gold(a.answer, q.answers) if q.answerable and a.answerable else 0.0,
                     "f1": char_f1(a.answer, q.answers) if q.answerable and a.answerable else 0.0})
        if on_question:
            on_question(i, len(questions))
    answerable = [r for r in rows if r["answerable_gold"]]
    made = sum(m[0] for m in mutants.values())
    caught = sum(m[1] for m in mutants.values())
    return {
        "dataset": name, "answerer": "llm", "questions": len(rows), "seconds": round(time.perf_counter() - t0, 1),
        "answers": {
            "contains_gold": _mean([r["contains_gold"] for r in answerable]),
            "f1": _mean([r["f1"] for r in answerable]),
            "by_llm": _mean([r["answerer"] == "llm" for r in rows]),
            **abstention([not r["answerable"] for r in rows], [r["answerable_gold"] for r in rows]),
        },
        "fallbacks": dict(fallbacks),
        "sentences": {"total": len(sentences), "supported": sum(sentences),
                      "supported_share": _mean(sentences), "dropped_because": dict(reasons)},
        "caught": {"figure_mutants": mutants["figure"][0], "figure_caught": mutants["figure"][1],
                   "citation_mutants": mutants["citation"][0], "citation_caught": mutants["citation"][1],
                   "caught_share": caught / made if made else None},
        "per_question": rows,
    }


def _mean(values) -> float | None:
    values = [float(v) for v in values]
    return round(sum(values) / len(values), 4) if values else None


def render_llm_table(result: dict) -> str:
    """The headline figures as a Markdown table."""
    a, s, c = result["answers"], result["sentences"], result["caught"]

    def fmt(v) -> str:
        return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    rows = [("questions", result["questions"]), ("answered by the LLM", a["by_llm"]),
            ("gold in shown answer (answerable)", a["contains_gold"]), ("char F1 (answerable)", a["f1"]),
            ("refusal precision", a["refusal_precision"]), ("refusal recall", a["refusal_recall"]),
            ("sentences", s["total"]), ("sentences supported", s["supported_share"]),
            ("made-up sentences caught", c["caught_share"]),
            ("fallbacks", ", ".join(f"{k} {v}" for k, v in sorted(result["fallbacks"].items())) or "none"),
            ("dropped because", ", ".join(f"{k} {v}" for k, v in sorted(s["dropped_because"].items())) or "none")]
    return "\n".join(["| llm eval | value |", "|---|---|"] + [f"| {k} | {fmt(v)} |" for k, v in rows])
