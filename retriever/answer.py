"""The extractive answerer: the short answer and the sentence that supports it,
with its citation, or an honest refusal.

No LLM. For an analysed question (retriever/question.py):

1. Retrieval gives the top passages.
2. The span reader (retriever/reader.py, e5-small fine-tuned on the CMRC 2018
   trial split) proposes answer spans in the first few.
3. Each proposal becomes a ``Candidate`` with features: the reader's scores,
   whether the span has the kind of answer asked for and keeps its unit
   (516万标准箱, not 516万), whether its sentence names the places, people and
   figures the question names (广茂铁路 is not 广三铁路), the passage's rank,
   the share of the question's words around it. A small logistic model
   (retriever/models/answerer.json) scores each candidate; the best one wins.
4. An answerability model over the winner and the retrieval scores gives the
   probability that the articles answer at all; under the threshold wenda
   refuses, and lists the closest passages as related, not as an answer.
5. When the winner's score says the short span is likely right it is shown;
   otherwise the sentence that holds it is shown, not a fragment that may be
   wrong. Both come with article offsets, so ``quote == text[start:end]``.

Both models were fitted on the CMRC 2018 trial split only (``python -m
eval.train_answerer``; data and figures in their JSON file) and are plain
JSON, loaded without pickle.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ingest.build import index_text
from ingest.models import Hit, Passage
from ingest.script import fold_script
from ingest.splitter import sentence_spans

from .index import IndexReader
from .numbers import numbers_in
from .question import KINDS, UNITS, Question, posseg
from .reader import MODELS, Reading, SpanReader
from .rerank import evidence_coverage
from .search import DenseRetriever, HybridSettings, make_retriever, prepare
from .spans import rule_spans, term_distance

NOT_FOUND_MESSAGE = "资料中没有找到这个问题的答案。(The articles do not answer this question.)"
ANSWERER_JSON = MODELS / "answerer.json"

_UNIT_RE = "|".join(map(re.escape, UNITS))
_DIGIT = re.compile(r"\d|[零〇一二两三四五六七八九十百千万亿]")
_DATE = re.compile(r"\d{2,4}年|\d{1,2}月|\d{1,2}日|[上中下]旬|世纪|年代|[春夏秋冬]季|今年|去年|明年|前年|[一二三四五六七八九十〇零]{2,4}年")
_TIME_UNIT = re.compile(r"(?:个)?(?:工作日|小时|分钟|秒|周|个月|天|年|月|日|星期)")
_PERCENT = re.compile(r"%|％|‰|成|百分")
_MONEY = re.compile(r"元|美元|欧元|港元|英镑|日元|块钱")
_QUOTED = re.compile(r"[“「『《]([^”」』》]{1,40})[”」』》]")
_TRIM = " \u3000，,、。；;：:！!？?…"
_OPEN, _CLOSE = "“「『《（(", "”」』》）)"


@dataclass(frozen=True)
class AnswererSettings:
    """Answerer knobs.

    Args:
        passages: retrieval hits the answerer looks at (for related passages
            on a refusal, and the retrieval features).
        read_passages: of those, how many the span reader reads (the slow part:
            about 0.1 s each on 2 cores).
        min_confidence: refuse when the answerability model's probability is
            under this; None takes the model's tuned threshold.
        min_confidence_crosslingual: the same for questions without Chinese.
        short_confidence: show the short span when the candidate model's
            probability that it is right is at least this, else the sentence;
            None takes the model's tuned value.
        model: the answerer models (JSON).
    """

    passages: int = 4
    read_passages: int = 2
    min_confidence: float | None = None
    min_confidence_crosslingual: float | None = None
    short_confidence: float | None = None
    model: Path = ANSWERER_JSON


@dataclass(frozen=True)
class Citation:
    """Where an answer comes from: ``quote == article.text[start:end]`` (the
    supporting sentence); the answer shown is ``article.text[answer_start:answer_end]``."""

    passage_id: str
    article_id: str
    title: str
    section: str | None
    paragraph: int
    start: int
    end: int
    quote: str
    score: float
    answer_start: int | None = None
    answer_end: int | None = None


@dataclass(frozen=True)
class Answer:
    """The reply to a question.

    ``answer`` is what to show: the short answer when wenda is confident of it,
    else the supporting sentence; ``short_answer`` is the short span or None.
    A refusal (``answerable`` false) has no citations but may list
    ``related`` passages: close, but not an answer.
    """

    question: str
    answer: str
    answerable: bool
    confidence: float
    citations: list[Citation] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    short_answer: str | None = None
    kind: str = "other"
    related: list[Citation] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("hits")
        return d


@dataclass(frozen=True)
class Candidate:
    """A proposed answer: the span, the sentence around it (both as article
    offsets), where it came from and its features."""

    passage: Passage
    rank: int
    start: int
    end: int
    sentence_start: int
    sentence_end: int
    features: dict[str, float]
    score: float = 0.0


# ---- the models ------------------------------------------------------------------------


class LogisticModel:
    """A logistic regression stored as JSON: standardised features, weights,
    bias. ``predict(features) -> probability``."""

    def __init__(self, spec: dict) -> None:
        self.features: list[str] = list(spec["features"])
        self.mean = np.asarray(spec["mean"], dtype=np.float64)
        self.scale = np.asarray(spec["scale"], dtype=np.float64)
        self.weights = np.asarray(spec["weights"], dtype=np.float64)
        self.bias = float(spec["bias"])
        self._masks: dict[frozenset[str], np.ndarray] = {}

    def _neutral_mask(self, neutral: frozenset[str]) -> np.ndarray:
        """Where ``neutral``'s features sit in the vector (computed once per set)."""
        mask = self._masks.get(neutral)
        if mask is None:
            mask = self._masks[neutral] = np.array([name in neutral for name in self.features])
        return mask

    def vector(self, features: dict[str, float]) -> np.ndarray:
        return np.array([float(features.get(name, 0.0)) for name in self.features])

    def predict(self, features: dict[str, float], neutral: frozenset[str] = frozenset()) -> float:
        """The probability; features named in ``neutral`` are read as their
        training mean (they add nothing either way)."""
        z_vec = (self.vector(features) - self.mean) / self.scale
        if neutral:
            z_vec[self._neutral_mask(neutral)] = 0.0
        z = float(z_vec @ self.weights + self.bias)
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@dataclass(frozen=True)
class AnswererModels:
    """The candidate model, the answerability model and their thresholds."""

    candidate: LogisticModel
    answerable: LogisticModel
    min_confidence: float
    min_confidence_crosslingual: float
    short_confidence: float
    info: dict

    @classmethod
    def load(cls, path: Path = ANSWERER_JSON) -> AnswererModels:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
        t = spec["thresholds"]
        return cls(LogisticModel(spec["candidate"]), LogisticModel(spec["answerable"]),
                   float(t["min_confidence"]), float(t["min_confidence_crosslingual"]),
                   float(t["short_confidence"]), spec)


# Features that mean nothing for a question with no Chinese in it: Chinese
# word overlap with the passage and sentence, the question's length in
# characters, and the fused scores (an English question is ranked by the
# dense side alone, on another scale). The models were fitted on Chinese
# questions; for an English one these are read as their training mean, and
# its refusal threshold is chosen apart (min_confidence_crosslingual).
LEXICAL_FEATURES = frozenset({
    "passage_coverage", "sentence_coverage", "best_sentence", "term_distance", "term_mass", "span_in_question",
    "question_chars", "fused", "fused_gap", "top_fused", "fused_margin", "sentence_similarity",
})

RULES = ("reader", "figure", "date", "name", "quoted", "slot", "slot_clause", "clause", "sentence")
# What the candidate model reads (the JSON names its own list; this is the
# list eval/train_answerer.py fits).
CANDIDATE_FEATURES = (
    "passage_rank", "fused", "fused_gap", "reader_margin", "passage_coverage", "places_in_passage",
    "entities_in_passage", "numbers_in_passage", *(f"rule={r}" for r in RULES), "reader_rank", "reader",
    "sentence_coverage", "best_sentence", "kind_agrees", "unit_in_span", "term_distance", "term_mass",
    "places_in_sentence", "entities_in_sentence", "span_chars", "sentence_share", "span_in_question",
    *(f"kind={k}" for k in KINDS), "english",
)
# What the answerability model reads: the winner's features and score, the
# similarity of question and supporting sentence, the retrieval scores.
ANSWER_FEATURES = (*CANDIDATE_FEATURES, "candidate", "sentence_similarity", "top_fused", "fused_margin",
                   "question_chars")

_models_lock = threading.Lock()
_shared: dict[str, object] = {}


def shared_reader() -> SpanReader:
    """One span reader per process (it holds the encoder's weights, ~90 MB)."""
    with _models_lock:
        if "reader" not in _shared:
            _shared["reader"] = SpanReader()
        return _shared["reader"]  # type: ignore[return-value]


def shared_models(path: Path = ANSWERER_JSON) -> AnswererModels:
    with _models_lock:
        key = f"models:{path}"
        if key not in _shared:
            _shared[key] = AnswererModels.load(path)
        return _shared[key]  # type: ignore[return-value]


# ---- features -----------------------------------------------------------------------


def kind_agrees(kind: str, span: str, source: str = "") -> float:
    """1 when ``span`` looks like the kind of answer asked for, 0 when it does
    not, 0.5 when the kind cannot be checked from the text. ``source`` is the
    rule that made the span ("name" spans were tagged with the kind's tag)."""
    if kind in ("person", "place", "org") and source == "name":
        return 1.0
    if kind in ("count",):
        return float(bool(_DIGIT.search(span)))
    if kind == "money":
        return float(bool(_DIGIT.search(span)) and bool(_MONEY.search(span)))
    if kind == "percent":
        return float(bool(_DIGIT.search(span)) and bool(_PERCENT.search(span)))
    if kind == "date":
        return float(bool(_DATE.search(span)))
    if kind == "duration":
        return float(bool(_DIGIT.search(span)) and bool(_TIME_UNIT.search(span)))
    if kind in ("person", "place", "org"):
        flags = {"person": ("nr",), "place": ("ns",), "org": ("nt",)}[kind]
        return float(any(f in flags for _, f in posseg(span))) if len(span) <= 12 else 0.0
    if kind == "title":
        return float(bool(_QUOTED.search(span)) or len(span) <= 20)
    return 0.5


def complete_unit(text: str, start: int, end: int, unit: str, kind: str) -> int:
    """Extend a figure to the unit the question asks for when the text carries
    it right after (516万 -> 516万标准箱; 1310万余 -> 1310万余人次)."""
    if kind not in ("count", "money", "percent", "duration") or not _DIGIT.search(text[start:end]):
        return end
    tail = text[end:end + 12]
    m = re.match(r"(?:余|多|左右)?(?:万|亿)?(?:余|多)?(" + (re.escape(unit) if unit else _UNIT_RE) + ")", tail)
    if m and not text[start:end].endswith(m.group(1)):
        return end + m.end()
    return end


_BRACKET_YEAR = re.compile(r"\s*[（(](?:公元)?(?:前)?\d{1,4}年[）)]")


def complete_date(text: str, start: int, end: int, kind: str) -> int:
    """Extend an era year to the Western year bracketed after it
    (天正16年 -> 天正16年（1588年））, as a reader of the sentence would quote it."""
    if kind != "date":
        return end
    m = _BRACKET_YEAR.match(text, end)
    return m.end() if m and "年" in text[start:end] else end


def _tidy(text: str, start: int, end: int) -> tuple[int, int]:
    """Trim spaces and punctuation at the ends; keep a quotation or bracket
    whole when the span opens it."""
    while start < end and text[start] in _TRIM:
        start += 1
    while end > start and text[end - 1] in _TRIM:
        end -= 1
    if end > start and text[start] in _OPEN and _CLOSE[_OPEN.index(text[start])] not in text[start + 1:end]:
        start += 1
    if end > start and text[end - 1] in _CLOSE and _OPEN[_CLOSE.index(text[end - 1])] not in text[start:end - 1]:
        end -= 1
    return start, end


def _sentence_around(text: str, start: int, end: int) -> tuple[int, int]:
    """The sentence (or run of sentences) of ``text`` that holds [start, end)."""
    spans = sentence_spans(text) or [(0, len(text))]
    s = next((a for a, b in spans if a <= start < b), spans[0][0])
    e = next((b for a, b in spans if a < end <= b), spans[-1][1])
    return s, max(e, end)


def _share_found(names: tuple[str, ...], *texts: str) -> float:
    if not names:
        return 1.0
    return sum(any(n in t for t in texts) for n in names) / len(names)


def _numbers_found(values: tuple[float, ...], text: str) -> float:
    if not values:
        return 1.0
    found = {round(v, 6) for _, _, v in numbers_in(text)}
    return sum(round(v, 6) in found for v in values) / len(values)


class ExtractiveAnswerer:
    """Answers from the index without an LLM.

    Args:
        index: the open index.
        mode: retrieval mode for finding passages (hybrid by default).
        settings: answerer knobs.
        hybrid: fusion settings for hybrid retrieval.
        reader: the span reader (default: the process's shared one).
        models: the candidate and answerability models (default: the shipped ones).
    """

    def __init__(self, index: IndexReader, *, mode: str = "hybrid", settings: AnswererSettings | None = None,
                 hybrid: HybridSettings | None = None, reader: SpanReader | None = None,
                 models: AnswererModels | None = None) -> None:
        self.index = index
        self.settings = settings or AnswererSettings()
        self.retriever = make_retriever(index, mode, hybrid)
        self.dense = DenseRetriever(index)
        self._reader = reader
        self._models = models

    @property
    def reader(self) -> SpanReader:
        if self._reader is None:
            self._reader = shared_reader()
        return self._reader

    @property
    def models(self) -> AnswererModels:
        if self._models is None:
            self._models = shared_models(self.settings.model)
        return self._models

    # ---- thresholds -------------------------------------------------------------
    def threshold(self, question: Question) -> float:
        st, m = self.settings, self.models
        if question.crosslingual:
            return st.min_confidence_crosslingual if st.min_confidence_crosslingual is not None \
                else m.min_confidence_crosslingual
        return st.min_confidence if st.min_confidence is not None else m.min_confidence

    def short_threshold(self) -> float:
        st = self.settings
        return st.short_confidence if st.short_confidence is not None else self.models.short_confidence

    # ---- candidates -------------------------------------------------------------
    def read(self, question: Question, passages: list[Passage]) -> list[Reading]:
        """The reader's findings in each passage (folded text, as trained)."""
        return self.reader.read(question.folded, [(fold_script(p.section or p.title), fold_script(p.text))
                                                  for p in passages])

    def candidates(self, question: Question, pairs: list[tuple[Hit, Passage]],
                   readings: list[Reading]) -> list[Candidate]:
        """Spans that could answer, with their features, unscored: the
        reader's proposals and the rule-made spans of every sentence
        (retriever/spans.py), each scored by the reader too."""
        out = []
        top_score = pairs[0][0].score if pairs else 0.0
        for rank, ((hit, p), reading) in enumerate(zip(pairs, readings)):
            folded = fold_script(p.text)
            context = fold_script(f"{p.title}\n{p.section or ''}")
            sentences = sentence_spans(folded) or [(0, len(folded))]
            cover = [evidence_coverage(question.bigrams, folded[a:b], 0, context=context) for a, b in sentences]
            window = evidence_coverage(question.bigrams, folded, 1, context=context)
            best_cover = max(cover)
            proposals: dict[tuple[int, int], str] = {}
            for i, span in enumerate(reading.spans):
                a, b = _tidy(folded, span.start, span.end)
                if b > a:
                    b = complete_date(folded, a, complete_unit(folded, a, b, question.unit, question.kind),
                                      question.kind)
                    proposals.setdefault((a, b), f"reader{i}")
            for a, b in sentences:
                for s, e, rule in rule_spans(question, folded[a:b]):
                    e = complete_unit(folded[a:b], s, e, question.unit, question.kind)
                    e = complete_date(folded[a:b], s, e, question.kind)
                    proposals.setdefault((a + s, a + e), rule)
            passage_f = {
                "passage_rank": float(rank), "fused": hit.score, "fused_gap": top_score - hit.score,
                "reader_margin": reading.margin, "passage_coverage": window,
                # A place counts when the paragraph or its own heading names it: the
                # article's title covers every section (吉林、江苏、福建、江西——…), so
                # it counts only for a paragraph under no section heading.
                "places_in_passage": _share_found(question.places, folded,
                                                  fold_script(p.section or p.title)),
                "entities_in_passage": _share_found(question.entities, folded, context),
                "numbers_in_passage": _numbers_found(question.numbers, folded + context),
            }
            for (start, end), source in proposals.items():
                k = next((i for i, (a, b) in enumerate(sentences) if a <= start < b), 0)
                s_start, s_end = _sentence_around(folded, start, end)
                text, sentence = folded[start:end], folded[s_start:s_end]
                near, mass = term_distance(question, sentence, start - s_start, end - s_start)
                f = dict(passage_f)
                f.update({
                    f"rule={source if not source.startswith('reader') else 'reader'}": 1.0,
                    "reader_rank": float(source[6:]) if source.startswith("reader") else 5.0,
                    "reader": max(-20.0, reading.score(start, end)),
                    "sentence_coverage": cover[k],
                    "best_sentence": float(cover[k] >= best_cover),
                    "kind_agrees": kind_agrees(question.kind, text, source),
                    "unit_in_span": float(bool(question.unit) and question.unit in text),
                    "term_distance": math.log1p(near),
                    "term_mass": mass,
                    "places_in_sentence": _share_found(question.places, sentence),
                    "entities_in_sentence": _share_found(question.entities, sentence),
                    "span_chars": math.log1p(end - start),
                    "sentence_share": (end - start) / max(1, s_end - s_start),
                    "span_in_question": float(text in question.folded),
                })
                out.append(Candidate(p, rank, p.start + start, p.start + end, p.start + s_start,
                                     p.start + s_end, f))
        return out

    def _with_kind(self, question: Question, f: dict[str, float]) -> dict[str, float]:
        out = dict(f)
        out[f"kind={question.kind}"] = 1.0
        out["english"] = float(question.crosslingual)
        return out

    @staticmethod
    def _neutral(question: Question) -> frozenset[str]:
        return LEXICAL_FEATURES if question.crosslingual else frozenset()

    def score(self, question: Question, cands: list[Candidate]) -> list[Candidate]:
        """Candidates scored by the candidate model, best first."""
        model = self.models.candidate
        scored = [Candidate(c.passage, c.rank, c.start, c.end, c.sentence_start, c.sentence_end, c.features,
                            model.predict(self._with_kind(question, c.features), self._neutral(question)))
                  for c in cands]
        return sorted(scored, key=lambda c: -c.score)

    def answer_features(self, question: Question, best: Candidate, pairs: list[tuple[Hit, Passage]],
                        qvec: np.ndarray) -> dict[str, float]:
        """What the answerability model reads: the winner's features, its
        score, the similarity of question and sentence, and retrieval scores."""
        p = best.passage
        sentence = fold_script(p.text[best.sentence_start - p.start:best.sentence_end - p.start])
        vec = self.index.embedder.embed_passages(
            [fold_script(index_text(Passage(p.passage_id, p.article_id, p.title, p.section, p.paragraph, p.part,
                                            best.sentence_start, best.sentence_end, sentence)))])[0]
        scores = [h.score for h, _ in pairs]
        f = dict(best.features)
        f.update(candidate=best.score, sentence_similarity=float(vec @ qvec),
                 top_fused=scores[0] if scores else 0.0,
                 fused_margin=(scores[0] - scores[1]) if len(scores) > 1 else 1.0,
                 question_chars=math.log1p(len(question.folded)))
        return self._with_kind(question, f)

    # ---- the public call ----------------------------------------------------------
    def _citation(self, best: Candidate, shown: tuple[int, int]) -> Citation:
        p = best.passage
        return Citation(p.passage_id, p.article_id, p.title, p.section, p.paragraph, best.sentence_start,
                        best.sentence_end, p.text[best.sentence_start - p.start:best.sentence_end - p.start],
                        round(best.score, 4), shown[0], shown[1])

    @staticmethod
    def _related(pairs: list[tuple[Hit, Passage]], n: int = 3) -> list[Citation]:
        return [Citation(p.passage_id, p.article_id, p.title, p.section, p.paragraph, p.start, p.end, p.text,
                         round(h.score, 4)) for h, p in pairs[:n]]

    def ask(self, question: str | Question, *, k: int = 5) -> Answer:
        """Answer a question with a citation, or refuse.

        Args:
            question: the question (Chinese or English), or one already analysed.
            k: how many retrieval hits to return with the answer.

        Returns:
            An ``Answer``. ``answerable`` is false (a short notice, no
            citations, the closest passages as ``related``) when the
            answerability model's probability is under the threshold.

        Raises:
            BadQueryError: empty, overlong or content-free question, bad k.
        """
        q, k = prepare(question, k)
        pairs = self.retriever.search_passages(q, max(k, self.settings.passages))
        hits = [h for h, _ in pairs][:k]
        refusal = Answer(q.text, NOT_FOUND_MESSAGE, False, 0.0, [], hits, None, q.kind, self._related(pairs))
        if not pairs:
            return refusal
        top = pairs[: self.settings.read_passages]
        cands = self.score(q, self.candidates(q, top, self.read(q, [p for _, p in top])))
        if not cands:
            return refusal
        best = cands[0]
        qvec = self.dense.query_vector(q.folded)
        confidence = round(self.models.answerable.predict(self.answer_features(q, best, pairs, qvec),
                                                          self._neutral(q)), 4)
        if confidence < self.threshold(q):
            return Answer(q.text, NOT_FOUND_MESSAGE, False, confidence, [], hits, None, q.kind, self._related(pairs))
        p = best.passage
        short = p.text[best.start - p.start:best.end - p.start]
        if best.score >= self.short_threshold():
            shown, short_answer = (best.start, best.end), short
        else:
            a, b = _tidy(p.text, best.sentence_start - p.start, best.sentence_end - p.start)
            shown, short_answer = (p.start + a, p.start + b), None
        text = p.text[shown[0] - p.start:shown[1] - p.start]
        return Answer(q.text, text, True, confidence, [self._citation(best, shown)], hits, short_answer, q.kind)
