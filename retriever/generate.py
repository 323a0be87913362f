"""Generative answers through an OpenAI-compatible LLM, with every sentence
checked against the passage it cites.

The extractive answerer (retriever/answer.py) stays in front: it retrieves
the passages, and its answerability model decides whether the LLM is asked
at all. Then:

1. The prompt numbers the top passages ``[1]..[n]`` (title, section,
   paragraph, text) and asks for an answer in the question's language with
   ``[n]`` after each claim, or exactly ``NOT_IN_ARTICLES``.
2. The reply is split into sentences (。！？!? and a full stop before a
   space, or a line break; markers written after the full stop belong to the
   sentence before). Each sentence is checked (``check_sentence``): it must
   cite at least one passage, every passage it cites must exist, it must be in
   the question's language, and its figures (as values: 1310万 = 13,100,000 =
   13.1 million), dates and names (places, people, organisations, quoted
   titles, as jieba tags them) must appear in a passage it cites; a sentence
   with none of these must share a quarter of its character bigrams with them.
3. Unsupported sentences are dropped from ``answer`` and listed in
   ``sentences`` with ``supported: false`` and the reason. Each supported
   sentence's citations quote the sentence of the passage that supports it,
   with article offsets (``quote == article.text[start:end]``).
4. A reply that cites nothing, or whose every sentence fails, gives the
   extractive answer (or its refusal) with ``fallback`` saying why; so does an
   LLM error (timeout, HTTP error, a body that is not JSON, a stream cut
   halfway): never an error to the user. ``NOT_IN_ARTICLES``, a reply with no
   words, or the API's ``refusal`` is a refusal.

The LLM is reached through LangChain's chat-model interface (``ChatOpenAI``
with ``base_url``), so any OpenAI-compatible server works; tests pass a
model pointed at a scripted local server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace

from ingest.models import Hit, Passage
from ingest.script import fold_script
from ingest.splitter import sentence_spans

from .answer import NOT_FOUND_MESSAGE, Answer, Citation, ExtractiveAnswerer
from .gazetteer import places_in_english
from .numbers import numbers_in
from .question import Question, content_problem, posseg
from .search import prepare

#: What the prompt asks the model to write when the passages do not answer.
NOT_IN_ARTICLES = "NOT_IN_ARTICLES"
#: A sentence with no figure, date or name to check must share at least this
#: share of its character bigrams with the passages it cites. Set by hand, not
#: tuned: a sentence that restates a passage keeps most of its bigrams, one
#: citing an unrelated passage keeps almost none.
MIN_BIGRAM_SHARE = 0.25

_MARK = re.compile(r"\s*[\[［【]\s*(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\s*[\]］】]")
_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_CLOSERS = "”’」』）)\"'"
_LIST_NUMBER = re.compile(r"\s*(?:\d{1,2}|[a-zA-Z])")  # "1. " or "a. " opening a list item is no full stop
_EN_MULTIPLIER = re.compile(r"(\d+(?:[,，]\d{3})*(?:\.\d+)?)\s*(thousand|million|billion)\b", re.I)
_EN_SCALE = {"thousand": 1e3, "million": 1e6, "billion": 1e9}
_ZH_NUM = "〇零一二两三四五六七八九十"
_DATE = re.compile(rf"(?:(\d{{4}}|[{_ZH_NUM}]{{4}})年)?(?:(\d{{1,2}}|[{_ZH_NUM}]{{1,3}})月)?(?:(\d{{1,2}}|[{_ZH_NUM}]{{1,3}})[日号])?")
_QUOTED = re.compile(r"[《“「『]([^》”」』]{2,30})[》”」』]")
_NAME_TAGS = ("ns", "nr", "nt", "nz")
_PLACE_SUFFIX = re.compile(r"(?:壮族自治区|维吾尔自治区|回族自治区|自治区|自治州|自治县|省|市|县|区)$")
_REFUSAL = re.compile(r"NOT[_ ]IN[_ ]THE[_ ]?ARTICLES|NOT_IN_ARTICLES|资料中没有|文章中没有|材料中没有|没有提及|未提及"
                      r"|无法(?:根据|从)|无法回答|do not (?:answer|mention|say)|does not (?:answer|mention|say)"
                      r"|not in the (?:articles|passages)", re.I)

SYSTEM_PROMPT = """You answer questions about Chinese news articles using only the numbered passages you are given.
Rules:
1. Answer in {language}, in one to three sentences.
2. End every sentence with the number of the passage it comes from in square brackets, e.g. [2]. Cite only passages that are listed, and only for what they say.
3. Copy figures, dates and names exactly as the passage writes them.
4. If the passages do not answer the question, reply with exactly: NOT_IN_ARTICLES"""


# ---- results -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SentenceCheck:
    """One sentence of the model's reply and the verdict on it.

    Attributes:
        text: the sentence as the model wrote it, its ``[n]`` marks included.
        cited: the passage numbers it cites.
        supported: every check passed; only supported sentences are shown.
        reason: why it is not supported (None when it is).
        citations: the passage sentences that support it (when supported).
    """

    text: str
    cited: tuple[int, ...]
    supported: bool
    reason: str | None = None
    citations: tuple[Citation, ...] = ()


@dataclass(frozen=True)
class Token:
    """A piece of the model's reply, as it streams in (not yet checked)."""

    text: str


@dataclass(frozen=True)
class GeneratedAnswer:
    """An answer from the generative path: the fields of ``Answer`` plus
    which answerer produced it and how each sentence fared.

    ``answer`` holds the supported sentences with the model's ``[n]`` marks;
    ``markers[i]`` is the mark of ``citations[i]`` (several citations may share
    one when a passage supports two sentences with different quotes). On a
    fallback ``answerer`` is "extractive", ``answer`` and ``citations`` are the
    extractive ones (``markers`` 1, 2, ...) and ``fallback`` says why.
    ``confidence`` is always the extractive answerability model's.
    """

    question: str
    answer: str
    answerable: bool
    confidence: float
    citations: list[Citation]
    hits: list[Hit]
    kind: str
    related: list[Citation]
    answerer: str
    markers: list[int] = field(default_factory=list)
    short_answer: str | None = None
    fallback: str | None = None
    sentences: list[SentenceCheck] = field(default_factory=list)
    #: The passages numbered in the prompt (for eval; not part of the reply).
    passages: list[Passage] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        """The ``Answer`` fields and ``answerer``, ``fallback``, ``sentences``;
        each citation carries its ``marker`` and each sentence the indexes of
        its citations in ``citations``."""
        keys = {}
        citations = []
        for c, marker in zip(self.citations, self.markers):
            keys[(marker, c.passage_id, c.start, c.end)] = len(citations)
            citations.append({**asdict(c), "marker": marker})
        sentences = [{"text": s.text, "cited": list(s.cited), "supported": s.supported, "reason": s.reason,
                      "citations": [keys[(n, c.passage_id, c.start, c.end)] for n, c in zip(s.cited, s.citations)
                                    if (n, c.passage_id, c.start, c.end) in keys]}
                     for s in self.sentences]
        return {"question": self.question, "answer": self.answer, "answerable": self.answerable,
                "confidence": self.confidence, "citations": citations, "short_answer": self.short_answer,
                "kind": self.kind, "related": [asdict(c) for c in self.related], "answerer": self.answerer,
                "fallback": self.fallback, "sentences": sentences}


# ---- the LLM -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LlmConfig:
    """How to reach the LLM.

    Args:
        base_url: an OpenAI-compatible endpoint (``.../v1``).
        model: the model name it serves.
        api_key: its key (None for servers that need none); never shown in a repr.
        timeout: seconds per request, and between streamed tokens.
        max_tokens: most tokens per answer.
        max_retries: retries of a failed request (the openai client's backoff).
    """

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    max_tokens: int = 512
    max_retries: int = 1


def chat_model(config: LlmConfig):
    """A LangChain ``ChatOpenAI`` for ``config`` (temperature 0: the same
    question gets the same answer, as far as the server allows).

    Raises:
        AnswererUnavailableError: langchain-openai is not installed.
    """
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as exc:
        from ingest.errors import AnswererUnavailableError

        raise AnswererUnavailableError("langchain-openai is not installed; pip install 'wenda[llm]'.") from exc
    # The openai client insists on a key; local servers (Ollama, llama.cpp) ignore it.
    return ChatOpenAI(base_url=config.base_url, model=config.model, api_key=config.api_key or "not-needed",
                      timeout=config.timeout, max_tokens=config.max_tokens, max_retries=config.max_retries,
                      temperature=0)


class LlmFailure(Exception):
    """The LLM did not give a usable reply (internal: it becomes a fallback)."""


def describe_failure(exc: BaseException, *, timeout: float) -> str:
    """One line saying what went wrong with the LLM, without secrets."""
    import openai

    if isinstance(exc, LlmFailure):
        return str(exc)
    if isinstance(exc, openai.APITimeoutError):
        return f"no answer within {timeout:g} s (WENDA_LLM_TIMEOUT)"
    if isinstance(exc, openai.APIStatusError):
        return f"the LLM server answered HTTP {exc.status_code}"
    if isinstance(exc, openai.APIConnectionError):
        # By name: the openai client brings its own httpx (httpx or httpx2, by version).
        if any(type(e).__name__ == "RemoteProtocolError" for e in _chain(exc)):
            return "the LLM server closed the connection before the reply ended"
        return "the LLM server could not be reached"
    if isinstance(exc, (openai.APIResponseValidationError, ValueError)):
        return "the LLM server's reply was not valid JSON"
    return f"the LLM call failed ({type(exc).__name__})"


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes (LangChain wraps openai's errors, which wrap httpx's)."""
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def _failures() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the LLM failed", not "wenda has a bug": the
    openai client's (LangChain's wrappers subclass them; transport errors
    come wrapped in them) and JSON that does not parse."""
    import openai

    return (LlmFailure, openai.OpenAIError, ValueError)


# ---- the prompt ----------------------------------------------------------------------------
def build_messages(question: Question, passages: Sequence[Passage]) -> list[tuple[str, str]]:
    """The chat messages: the rules, then the numbered passages and the question."""
    language = "Chinese (简体中文)" if question.lang == "zh" else "English"
    blocks = []
    for n, p in enumerate(passages, start=1):
        where = " · ".join(part for part in (f"《{p.title}》", p.section, f"第{p.paragraph}段") if part)
        blocks.append(f"[{n}] {where}\n{p.text}")
    user = "Passages:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question.text}"
    return [("system", SYSTEM_PROMPT.format(language=language)), ("human", user)]


REWRITE_PROMPT = """Rewrite the user's last message as one question that can be understood without the conversation: fill in what it refers to (the place, the name, the thing asked about) from the earlier turns. Keep its language. If it already stands alone, return it unchanged. Reply with the question only."""
#: Characters of each earlier turn shown to the rewriter (answers carry long quotes).
REWRITE_TURN_CHARS = 300
REWRITE_TURNS = 8


def rewrite_question(chat, history: Sequence[tuple[str, str]], message: str, *, max_chars: int = 1000) -> str | None:
    """The LLM's standalone form of ``message`` given the conversation, or
    None when the LLM fails or answers with something that is not a usable
    question (then the caller rewrites by rules, retriever/followup.py).

    Args:
        chat: the LangChain chat model.
        history: earlier turns, (role, text), oldest first.
        message: the latest user message.
        max_chars: the longest question accepted.
    """
    turns = [f"{'User' if role == 'user' else 'Assistant'}: {text[:REWRITE_TURN_CHARS]}"
             for role, text in history[-REWRITE_TURNS:]]
    user = "Conversation:\n" + "\n".join(turns) + f"\n\nLast message: {message}\n\nStandalone question:"
    try:
        reply = _text(chat.invoke([("system", REWRITE_PROMPT), ("human", user)]).content).strip()
    except _failures():
        return None
    line = reply.splitlines()[0].strip() if reply else ""
    line = re.sub(r"^(?:standalone question|question|问题)\s*[:：]\s*", "", line, flags=re.I).strip(" \"“”'")
    if not line or len(line) > max_chars or content_problem(line) or NOT_IN_ARTICLES in line:
        return None
    if _MARK.search(line):
        return None  # an answer with citation marks, not a question
    return line


# ---- splitting and checking ----------------------------------------------------------------
def split_reply(text: str) -> list[str]:
    """The sentences of a reply, each with the ``[n]`` marks that follow it
    (a mark written after the full stop belongs to the sentence before)."""
    out: list[str] = []
    pos, i, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        is_end = c in "。！？!?\n" or (c == "." and (i + 1 == n or text[i + 1].isspace())
                                         and not _LIST_NUMBER.fullmatch(text[text.rfind("\n", 0, i) + 1:i]))
        if not is_end:
            i += 1
            continue
        j = i + 1
        while j < n and text[j] in "。！？!?" + _CLOSERS:
            j += 1
        while (m := _MARK.match(text, j)):
            j = m.end()
        out.append(text[pos:j])
        pos = i = j
    out.append(text[pos:])
    sentences: list[str] = []
    for s in (s.strip() for s in out):
        if not s:
            continue
        if sentences and not _MARK.sub("", s).strip(" 。.，,"):
            sentences[-1] += s  # marks alone on a line
        else:
            sentences.append(s)
    return sentences


def cited_numbers(sentence: str) -> tuple[int, ...]:
    """The passage numbers a sentence cites, in order, without repeats."""
    found = [int(x) for m in _MARK.finditer(sentence) for x in re.split(r"[,，、\s]+", m.group(1)) if x]
    return tuple(dict.fromkeys(found))


def _values(text: str) -> set[float]:
    """Figures in ``text`` as values, English multipliers included (13.1 million)."""
    values = set()
    for m in _EN_MULTIPLIER.finditer(text):
        values.add(round(float(m.group(1).replace(",", "").replace("，", "")) * _EN_SCALE[m.group(2).lower()], 6))
    text = _EN_MULTIPLIER.sub(" ", text)
    values.update(round(v, 6) for _, _, v in numbers_in(text))
    return values


def _dates(text: str) -> list[tuple[str | None, str | None, str | None]]:
    """(year, month, day) of each date written in Chinese, as value strings."""
    from .numbers import parse_number

    out = []
    for m in _DATE.finditer(text):
        if not m.group(0) or not any(m.groups()):
            continue
        # 年 alone is a date only with four digits (两年 is a duration).
        parts = []
        for g in m.groups():
            v = parse_number(g) if g else None
            parts.append(None if v is None else str(int(v)))
        if parts[1] is None and parts[2] is None and (parts[0] is None or len(parts[0]) != 4):
            continue
        out.append(tuple(parts))
    return out


def _date_supported(date: tuple, support: list[tuple]) -> bool:
    finest = next(i for i in (2, 1, 0) if date[i] is not None)
    for d in support:
        if d[finest] is None:
            continue
        if all(a == b for a, b in zip(date, d) if a is not None and b is not None):
            return True
    return False


def _names(text: str, lang: str) -> list[str]:
    """Names a sentence states: places (short form), people, organisations and
    other proper nouns as jieba tags them, and quoted titles; for English,
    the Chinese names of the places it names (other English names cannot be
    matched against Chinese text and are not checked)."""
    if lang != "zh":
        return list(dict.fromkeys(places_in_english(text)))
    names = []
    for word, flag in posseg(text):
        if flag in _NAME_TAGS and len(word) >= 2 and not word.isascii():
            short = _PLACE_SUFFIX.sub("", word) if flag == "ns" else word
            names.append(short if len(short) >= 2 else word)
    names += [m.group(1) for m in _QUOTED.finditer(text)]
    return list(dict.fromkeys(names))


def _bigrams(text: str) -> set[str]:
    han = "".join(_CJK.findall(text))
    return {han[i:i + 2] for i in range(len(han) - 1)}


def _language_problem(body: str, lang: str) -> str | None:
    cjk, latin = len(_CJK.findall(body)), len(_LATIN_WORD.findall(body))
    if lang == "zh" and cjk == 0 and latin >= 2:
        return "it is written in English; the question is in Chinese"
    if lang != "zh" and cjk > sum(len(w) for w in _LATIN_WORD.findall(body)):
        return "it is written in Chinese; the question is in English"
    return None


def _support_text(p: Passage) -> str:
    return fold_script(f"{p.title}\n{p.section or ''}\n{p.text}")


def check_sentence(sentence: str, passages: Sequence[Passage], *, lang: str = "zh",
                   scores: Sequence[float] = ()) -> SentenceCheck:
    """Check one sentence of the reply against the passages it cites.

    Args:
        sentence: the sentence with its ``[n]`` marks.
        passages: the passages as numbered in the prompt (``[1]`` is ``passages[0]``).
        lang: the question's language ("zh" or "en").
        scores: retrieval scores of the passages (for the citations).

    Returns:
        A ``SentenceCheck``: supported, with a citation per cited passage
        quoting its supporting sentence; or not, with the first reason found.
    """
    cited = cited_numbers(sentence)
    body = _MARK.sub("", sentence).strip()
    folded = fold_script(body)

    def fail(reason: str) -> SentenceCheck:
        return SentenceCheck(sentence, cited, False, reason)

    if not cited:
        return fail("it cites no passage")
    missing = [n for n in cited if not 1 <= n <= len(passages)]
    if missing:
        return fail(f"it cites [{missing[0]}], but the prompt numbered passages 1-{len(passages)}")
    problem = _language_problem(body, lang)
    if problem:
        return fail(problem)
    sources = [passages[n - 1] for n in cited]
    support = "\n".join(_support_text(p) for p in sources)
    support_dates = _dates(support)
    for date in _dates(folded):
        if not _date_supported(date, support_dates):
            return fail(f"the date {_show_date(date)} is not in {_marks(cited)}")
    support_values = _values(support)
    for value in sorted(_values(folded)):
        if value not in support_values:
            return fail(f"the figure {_show(value)} is not in {_marks(cited)}")
    names = _names(folded, lang)
    for name in names:
        if name not in support:
            return fail(f"the name {name} is not in {_marks(cited)}")
    values, dates = _values(folded), _dates(folded)
    if lang == "zh" and not (values or dates or names):
        grams = _bigrams(folded)
        share = len(grams & _bigrams(support)) / len(grams) if grams else 1.0
        if share < MIN_BIGRAM_SHARE:
            return fail(f"only {share:.0%} of its wording is in {_marks(cited)}")
    citations = tuple(_quote(p, folded, values, names, scores[n - 1] if len(scores) >= n else 0.0)
                      for n, p in zip(cited, sources))
    return SentenceCheck(sentence, cited, True, None, citations)


def _marks(cited: Sequence[int]) -> str:
    return "".join(f"[{n}]" for n in cited)


def _show(value: float) -> str:
    return f"{value:g}" if value < 1e15 else str(value)


def _show_date(date: tuple) -> str:
    y, m, d = date
    return "".join(f"{v}{u}" for v, u in ((y, "年"), (m, "月"), (d, "日")) if v is not None)


def _quote(p: Passage, claim: str, values: set[float], names: list[str], score: float) -> Citation:
    """The sentence (or run of sentences) of ``p`` that supports ``claim``:
    the one holding most of its figures, then of its names, then of its
    bigrams; widened to the run that holds every figure of the claim that
    ``p`` has (names are not widened for: a place is often named once, at the
    top of a paragraph or in its heading)."""
    text = fold_script(p.text)
    spans = sentence_spans(text) or [(0, len(text))]
    grams = _bigrams(claim)

    def figures(a: int, b: int) -> set[float]:
        return {round(v, 6) for _, _, v in numbers_in(text[a:b])} & values

    def rank(i: int) -> tuple:
        a, b = spans[i]
        return (len(figures(a, b)), sum(n in text[a:b] for n in names), len(grams & _bigrams(text[a:b])))

    best = max(range(len(spans)), key=rank)
    lo = hi = best
    missing = figures(0, len(text)) - figures(*spans[best])
    for i, (a, b) in enumerate(spans):
        if figures(a, b) & missing:
            lo, hi = min(lo, i), max(hi, i)
    a, b = spans[lo][0], spans[hi][1]
    return Citation(p.passage_id, p.article_id, p.title, p.section, p.paragraph, p.start + a, p.start + b,
                    p.text[a:b], round(score, 4))


def is_refusal(reply: str) -> bool:
    """True when the reply says the passages do not answer (the marker, or
    words to that effect) and cites nothing. A reply that also cites is
    checked sentence by sentence instead: its uncited refusal sentence is
    dropped, its cited sentences may stand."""
    text = reply.strip()
    return bool(_REFUSAL.search(text)) and not cited_numbers(text)


# ---- the answerer --------------------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    """What the LLM step needs, read from the index: the analysed question,
    the extractive answer, the passages for the prompt (numbered from 1), and
    the reason not to ask the LLM (None: ask it)."""

    question: Question
    extractive: Answer
    passages: list[tuple[Hit, Passage]]
    skip: str | None


class GenerativeAnswerer:
    """Answers with an LLM, each sentence checked; the extractive answer is
    the fallback.

    Args:
        extractive: the extractive answerer (retrieval, answerability, fallback).
        chat: a LangChain chat model (``chat_model(config)``).
        passages: passages numbered in the prompt.
        skip_share: the LLM is not asked when the extractive model refuses
            with a confidence under this share of its threshold: a confident
            refusal (most questions about things the articles never mention
            land far under it), and an LLM call saved.
        timeout: the chat model's timeout (for messages).
    """

    def __init__(self, extractive: ExtractiveAnswerer, chat, *, passages: int = 5, skip_share: float = 0.5,
                 timeout: float = 30.0) -> None:
        self.extractive = extractive
        self.chat = chat
        self.passages = passages
        self.skip_share = skip_share
        self.timeout = timeout

    def prepare(self, question: str | Question, *, k: int = 5) -> Prepared:
        """Retrieve and answer extractively; decide whether to ask the LLM.

        Raises:
            BadQueryError: empty, overlong or content-free question, bad k.
        """
        q, k = prepare(question, k)
        ext = self.extractive.ask(q, k=max(k, self.passages))
        index = self.extractive.index
        pairs = [(h, index.passage(h.passage_id)) for h in ext.hits[: self.passages]]
        ext = Answer(ext.question, ext.answer, ext.answerable, ext.confidence, ext.citations, ext.hits[:k],
                     ext.short_answer, ext.kind, ext.related)
        skip = None
        threshold = self.extractive.threshold(q)
        if not pairs:
            skip = "No passage was retrieved, so the LLM was not asked."
        elif not ext.answerable and ext.confidence < self.skip_share * threshold:
            skip = (f"The extractive answerability model refused with confidence {ext.confidence:.2f}, under "
                    f"{self.skip_share:g} of its threshold {threshold:.2f} (WENDA_LLM_SKIP_SHARE), so the LLM "
                    "was not asked.")
        return Prepared(q, ext, pairs, skip)

    def ask(self, question: str | Question, *, k: int = 5) -> GeneratedAnswer:
        """Answer with the LLM (one request, not streamed), checked.

        Raises:
            BadQueryError: see ``prepare``.
        """
        return self.complete(self.prepare(question, k=k))

    def complete(self, prepared: Prepared) -> GeneratedAnswer:
        """The LLM's answer to a prepared question, checked; a fallback on any LLM failure."""
        if prepared.skip:
            return fallback(prepared.extractive, prepared.skip)
        messages = build_messages(prepared.question, [p for _, p in prepared.passages])
        try:
            message = self.chat.invoke(messages)
            if message.additional_kwargs.get("refusal") or message.response_metadata.get("finish_reason") == \
                    "content_filter":
                return refusal(prepared)
            reply = _text(message.content)
        except _failures() as exc:
            return fallback(prepared.extractive, f"The LLM failed ({describe_failure(exc, timeout=self.timeout)}); "
                                                 "this is the extractive answer.")
        return checked(prepared, reply)

    def stream(self, prepared: Prepared) -> Iterator[Token | GeneratedAnswer]:
        """The LLM's reply as it streams (``Token``s, unchecked), then the
        checked ``GeneratedAnswer``, which is what to show in the end."""
        if prepared.skip:
            yield fallback(prepared.extractive, prepared.skip)
            return
        messages = build_messages(prepared.question, [p for _, p in prepared.passages])
        parts: list[str] = []
        # The reply's start while it may yet be NOT_IN_ARTICLES (not shown as
        # words); None once it cannot be.
        held: str | None = ""
        finished = refused = False
        try:
            for chunk in self.chat.stream(messages):
                if chunk.additional_kwargs.get("refusal"):
                    refused = True
                text = _text(chunk.content)
                if text:
                    parts.append(text)
                    if held is None:
                        yield Token(text)
                        continue
                    held += text
                    if not NOT_IN_ARTICLES.startswith(held.strip()[: len(NOT_IN_ARTICLES)]):
                        yield Token(held)
                        held = None
                reason = chunk.response_metadata.get("finish_reason")
                if reason:
                    finished = True
                    refused = refused or reason == "content_filter"
            if not finished and not refused:
                raise LlmFailure("the stream ended before the model finished")
        except _failures() as exc:
            yield fallback(prepared.extractive, f"The LLM failed ({describe_failure(exc, timeout=self.timeout)}); "
                                                "this is the extractive answer.")
            return
        yield refusal(prepared) if refused else checked(prepared, "".join(parts))


def _text(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content or [])


def fallback(answer: Answer, why: str) -> GeneratedAnswer:
    """The extractive answer (or its refusal), saying why it is shown."""
    return GeneratedAnswer(answer.question, answer.answer, answer.answerable, answer.confidence,
                           list(answer.citations), answer.hits, answer.kind, list(answer.related), "extractive",
                           list(range(1, len(answer.citations) + 1)), answer.short_answer, why)


def refusal(prepared: Prepared, sentences: list[SentenceCheck] | None = None) -> GeneratedAnswer:
    """The model says the passages do not answer: a refusal, listing the
    passages it read as related."""
    ext = prepared.extractive
    related = list(ext.related) or [
        Citation(p.passage_id, p.article_id, p.title, p.section, p.paragraph, p.start, p.end, p.text,
                 round(h.score, 4)) for h, p in prepared.passages[:3]]
    return GeneratedAnswer(ext.question, NOT_FOUND_MESSAGE, False, ext.confidence, [], ext.hits, ext.kind, related,
                           "llm", [], None, None, sentences or [], [p for _, p in prepared.passages])


def checked(prepared: Prepared, reply: str) -> GeneratedAnswer:
    """Check every sentence of ``reply``; the supported ones are the answer."""
    # A reply with no words is a refusal: LangChain (langchain-openai 1.7)
    # drops the ``refusal`` delta of a stream, leaving an empty reply.
    if not reply.strip() or is_refusal(reply):
        return refusal(prepared)
    passages = [p for _, p in prepared.passages]
    scores = [h.score for h, _ in prepared.passages]
    checks = [check_sentence(s, passages, lang=prepared.question.lang, scores=scores) for s in split_reply(reply)]
    kept = [c for c in checks if c.supported]
    ext = prepared.extractive
    if not any(c.cited for c in checks):
        return replace(fallback(ext, "The LLM's reply cited no passage; this is the extractive answer."),
                       sentences=checks, passages=passages)
    if not kept:
        n = len(checks)
        return replace(fallback(ext, f"None of the LLM's {n} sentence{'s' if n != 1 else ''} was supported by the "
                                     "passage it cites; this is the extractive answer."),
                       sentences=checks, passages=passages)
    citations, markers, seen = [], [], set()
    for c in kept:
        for n, cit in zip(c.cited, c.citations):
            key = (n, cit.passage_id, cit.start, cit.end)
            if key not in seen:
                seen.add(key)
                citations.append(cit)
                markers.append(n)
    text = _join(c.text for c in kept)
    return GeneratedAnswer(ext.question, text, True, ext.confidence, citations, ext.hits, ext.kind, [], "llm",
                           markers, None, None, checks, passages)


def _join(sentences) -> str:
    """Sentences back into text: a list item on its own line, a space between English sentences."""
    out = ""
    for s in sentences:
        if out and re.match(r"(?:\d{1,2}|[a-zA-Z])\.\s|[-•*]\s", s):
            out += "\n"
        elif out and out[-1].isascii() and s[:1].isascii():
            out += " "
        out += s
    return out
