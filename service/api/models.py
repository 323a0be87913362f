"""Request and response models of the HTTP API (separate classes, so the
OpenAPI schema documents exactly what goes in and what comes out).

Request models are strict (``"5"`` is not an integer) and the question
length limit comes from ``Settings.max_question_chars``, so the models that
carry a question are built per app by ``query_models``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from pydantic_core import PydanticCustomError

from ingest.readers import ID_PATTERN, ID_RULE, MAX_ID_CHARS
from retriever.question import content_problem


def _whole_number(value: object) -> object:
    """JSON Schema's integer: 5 and 5.0, but not "5" or true."""
    if isinstance(value, (str, bool)):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


Mode = Literal["hybrid", "dense", "bm25"]
AnswererChoice = Literal["auto", "extractive", "llm"]
ANSWERER_HELP = ("Who writes the answer: 'llm' (the configured LLM, every sentence checked against its citation), "
                 "'extractive' (no LLM), or 'auto' (the LLM when WENDA_LLM_BASE_URL is set; the default).")
K = Annotated[int, Field(ge=1, le=100, strict=False, description="Number of hits (1-100; default WENDA_TOP_K)."),
              BeforeValidator(_whole_number)]
MAX_META_CHARS = 2000
#: Most earlier questions a conversation on /v1/ask may carry (the follow-up
#: rules read only the chain of questions; 20 is far more than a page keeps).
MAX_HISTORY = 20


# ---- text checks ------------------------------------------------------------------
def text_rule(what: str, *, max_chars: int | None = None, setting: str | None = None,
              empty: str | None = None, content: bool = False) -> AfterValidator:
    """A validator for a required text field: not blank, valid Unicode, at most
    ``max_chars`` characters, with messages that say what to fix.

    Args:
        what: the field as a user names it ("The question", "The article text").
        max_chars: the length limit (None: no limit).
        setting: the setting that holds the limit, named in the message.
        empty: the message for an empty or blank value.
        content: refuse content-free or code-like text (only emoji, punctuation,
            invisible characters; SQL, templates, markup), as questions are.
    """

    def check(value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank", empty or f"{what} is empty.")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PydanticCustomError(
                "unicode", f"{what} is not valid Unicode text (it has a lone surrogate); send UTF-8 text.") from None
        if max_chars is not None and len(value) > max_chars:
            where = f" ({setting})" if setting else ""
            raise PydanticCustomError(
                "too_long", "{what} is {n} characters; the limit is {limit}{where}.",
                {"what": what, "n": len(value), "limit": max_chars, "where": where})
        problem = content_problem(value) if content else None
        if problem:
            raise PydanticCustomError("no_content", problem)
        return value

    return AfterValidator(check)


def text_schema(max_chars: int | None = None) -> dict:
    """JSON schema for a checked text field: non-blank, at most ``max_chars``."""
    schema: dict[str, Any] = {"minLength": 1, "pattern": r"\S"}
    if max_chars is not None:
        schema["maxLength"] = max_chars
    return schema


def _optional_meta(value: str | None) -> str | None:
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PydanticCustomError(
                "unicode", "The value is not valid Unicode text (it has a lone surrogate); send UTF-8 text.") from None
    return value


Meta = Annotated[str | None, Field(max_length=MAX_META_CHARS), AfterValidator(_optional_meta)]


# ---- questions ---------------------------------------------------------------------
@dataclass(frozen=True)
class QueryModels:
    """The request models whose limits come from settings."""

    ask: type[BaseModel]
    search: type[BaseModel]


def query_models(max_question_chars: int) -> QueryModels:
    """Build the ask and search request models for one app.

    Args:
        max_question_chars: the longest question accepted (WENDA_MAX_QUESTION_CHARS).
    """
    question = Annotated[
        str,
        Field(description=f"The question, Chinese or English (at most {max_question_chars} characters).",
              json_schema_extra=text_schema(max_question_chars)),
        text_rule("The question", max_chars=max_question_chars, setting="WENDA_MAX_QUESTION_CHARS",
                  empty="The question is empty; type a question.", content=True),
    ]
    query = Annotated[
        str,
        Field(description=f"The search query (at most {max_question_chars} characters).",
              json_schema_extra=text_schema(max_question_chars)),
        text_rule("The query", max_chars=max_question_chars, setting="WENDA_MAX_QUESTION_CHARS",
                  empty="The query is empty; type what to search for.", content=True),
    ]

    class AskRequest(BaseModel):
        """A question for ``POST /v1/ask``."""

        model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={
            "examples": [{"question": "福建12345热线的群众满意率是多少？"}]})

        question: question
        k: K | None = None
        mode: Mode | None = Field(None, description="Retrieval mode (default WENDA_MODE, hybrid).")
        answerer: AnswererChoice | None = Field(None, description=ANSWERER_HELP)
        history: Annotated[list[question], Field(max_length=MAX_HISTORY)] | None = Field(
            None, description="The earlier questions of a conversation, oldest first: `question` is then read "
                              "as a follow-up (那江西呢？) and the standalone question answered comes back as "
                              "`question`, with `rewritten_by`.")
        stream: StrictBool | None = Field(False, description="Send server-sent events: `delta` (the LLM's text "
                                          "as it comes, unchecked), then `answer` (the checked answer, which "
                                          "replaces it), then `done`.")

    class SearchRequest(BaseModel):
        """A query for ``POST /v1/search``."""

        model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={
            "examples": [{"query": "大学生乡村医生", "k": 3}]})

        query: query
        k: K | None = None
        mode: Mode | None = Field(None, description="Retrieval mode (default WENDA_MODE, hybrid).")

    return QueryModels(ask=AskRequest, search=SearchRequest)


class CitationOut(BaseModel):
    """Where an answer comes from: ``quote == article.text[start:end]`` (the
    supporting sentence); the answer shown is ``article.text[answer_start:answer_end]``
    (offsets in characters)."""

    passage_id: str
    article_id: str
    title: str
    section: str | None
    paragraph: int = Field(description="1-based paragraph number (第N段).")
    start: int
    end: int
    quote: str
    score: float
    answer_start: int | None = None
    answer_end: int | None = None
    marker: int | None = Field(None, description="LLM answers: the [n] that cites it in `answer` (the passage's "
                                                 "number in the prompt); absent for extractive answers.")


class SentenceOut(BaseModel):
    """One sentence of the LLM's reply and the check on it."""

    text: str = Field(description="The sentence as the LLM wrote it, its [n] marks included.")
    cited: list[int] = Field(description="The passage numbers it cites.")
    supported: bool = Field(description="Every check passed; only supported sentences are in `answer`.")
    reason: str | None = Field(description="Why it is not supported (e.g. 'the figure 5000 is not in [1]').")
    citations: list[int] = Field(description="Indexes in `citations` of the passage sentences that support it.")


class AskResponse(BaseModel):
    """The same object as ``wenda ask --json``, plus ``took_ms``."""

    question: str
    answer: str = Field(description="What to show: the short answer when wenda is confident of it, "
                                    "else the sentence that holds the answer; a notice when it refuses.")
    short_answer: str | None = Field(description="The short answer (a figure, a name, a date...), or null "
                                                  "when wenda is not confident of one and shows the sentence.")
    answerable: bool = Field(description="False when the articles do not answer the question.")
    confidence: float = Field(description="Probability that the articles answer the question "
                                          "(the answerability model); under the threshold wenda refuses.")
    kind: str = Field(description="What the question asks for: count, money, percent, duration, date, person, "
                                  "place, org, title, list, yesno, description, entity or other.")
    citations: list[CitationOut]
    related: list[CitationOut] = Field(default_factory=list, description="On a refusal, the closest passages: "
                                       "related to the question, but not an answer.")
    rewritten_by: Literal["llm", "rules"] | None = Field(None, description="Present when `history` was sent: "
                                                         "how the follow-up was made standalone (`question` is "
                                                         "then the standalone question), or null.")
    answerer: Literal["extractive", "llm"] | None = Field(None, description="Present when an LLM was asked: "
                                                          "who wrote the answer shown.")
    fallback: str | None = Field(None, description="Present when an LLM was asked: why the extractive answer "
                                                   "is shown instead (LLM error, nothing supported...), or null.")
    sentences: list[SentenceOut] | None = Field(None, description="Present when an LLM was asked: each sentence "
                                                "of its reply and whether its citation supports it.")
    took_ms: float


class PassageOut(BaseModel):
    passage_id: str
    article_id: str
    title: str
    section: str | None
    paragraph: int
    part: int
    start: int
    end: int
    text: str


class SearchHitOut(PassageOut):
    """A ranked passage with its citation fields."""

    score: float
    source: str = Field(description="Which retriever scored it: dense, bm25 or hybrid.")


class SearchResponse(BaseModel):
    """Passages ranked for a query, best first."""

    query: str
    mode: Mode
    results: list[SearchHitOut]
    took_ms: float


# ---- articles -----------------------------------------------------------------------
class ArticleIn(BaseModel):
    """One article to add or replace. Without ``id`` the id is a hash of the text.
    Other fields are ignored, as in ``.jsonl`` ingest files."""

    model_config = ConfigDict(strict=True, extra="ignore", json_schema_extra={"examples": [{
        "id": "qingsong-2024", "title": "青松镇推进银杏种植",
        "text": "青松镇推进银杏种植\n今年青松镇新种植银杏树8848棵。", "date": "2024-03-01"}]})

    id: Annotated[str | None, Field(min_length=1, max_length=MAX_ID_CHARS,
                                    description=f"Article id: {ID_RULE}.",
                                    json_schema_extra={"pattern": ID_PATTERN}),
                  AfterValidator(_optional_meta)] = None
    title: Annotated[str, Field(json_schema_extra=text_schema(MAX_META_CHARS)),
                     text_rule("The title", max_chars=MAX_META_CHARS, empty="The title is empty; send a title.")]
    text: Annotated[str, Field(description="The article text; paragraphs separated by newlines.",
                               json_schema_extra=text_schema()),
                    text_rule("The article text", empty="The article text is empty; send the article's text.")]
    date: Meta = None
    source: Meta = None
    url: Meta = None


class SkippedOut(BaseModel):
    path: str
    reason: str


class IngestResponse(BaseModel):
    """What a write did, and the index size after it."""

    added: list[str]
    updated: list[str]
    unchanged: list[str]
    skipped: list[SkippedOut]
    passages_embedded: int
    passages_recut: int = Field(0, description="Passages whose BM25 words were re-cut for a new tokenizer.")
    articles_total: int
    passages_total: int
    took_ms: float


class DeleteResponse(BaseModel):
    deleted: str
    articles_total: int
    passages_total: int
    took_ms: float


class ParagraphOut(BaseModel):
    paragraph: int
    section: str | None
    start: int
    end: int
    text: str
    is_heading: bool


class ArticleOut(BaseModel):
    """An article with its numbered paragraphs (``wenda show --json``, plus
    ``is_heading`` on each paragraph). Offsets point into ``text``."""

    article_id: str
    title: str
    text: str
    date: str | None
    source: str | None
    url: str | None
    paragraphs: list[ParagraphOut]


# ---- operations -----------------------------------------------------------------------
class HealthOut(BaseModel):
    status: Literal["ok"]


class IndexSummary(BaseModel):
    """The live index, as ``wenda info`` shows it less its path on the server."""

    generation: str
    created_at: str
    embed_model: str
    dim: int
    faiss_index: str
    tokenizer: str
    articles: int
    passages: int


class ReadyOut(BaseModel):
    status: Literal["ready"]
    index: IndexSummary


class NotReadyOut(BaseModel):
    status: Literal["not_ready"]
    detail: str


class ErrorOut(BaseModel):
    """Every error: what happened and what to do."""

    detail: str


class FieldIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """A request that does not fit the schema: ``detail`` in one line, ``errors`` per field."""

    detail: str
    errors: list[FieldIssue] = []


# ---- OpenAI-compatible chat -------------------------------------------------------------
class ChatContentPart(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ChatContentPart] | None = None


class ChatRequest(BaseModel):
    """An OpenAI chat completion request; the last user message is the question.
    Other OpenAI fields (temperature, ...) are accepted and ignored."""

    model_config = ConfigDict(strict=True, extra="allow", json_schema_extra={"examples": [{
        "model": "wenda", "messages": [{"role": "user", "content": "福建12345热线的群众满意率是多少？"}]}]})

    model: Annotated[str, Field(max_length=200, description="Echoed back; wenda has one answerer."),
                     AfterValidator(_optional_meta)] = "wenda"
    messages: Annotated[list[ChatMessage], Field(min_length=1, description="The whole conversation; the last "
                                                 "user message is the question, made standalone from the "
                                                 "earlier ones (那江西呢？ after a question about 福建).")]
    stream: StrictBool | None = Field(False, description="Stream the reply as server-sent events.")
    answerer: AnswererChoice | None = Field(None, description=ANSWERER_HELP)


class ChatReply(BaseModel):
    role: Literal["assistant"]
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatReply
    finish_reason: Literal["stop"]


class ChatCompletion(BaseModel):
    """An OpenAI chat completion whose content is the answer with [1]-style
    citation marks; ``citations`` carries them as structured data."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    answerable: bool
    citations: list[CitationOut]
    question: str = Field(description="The question answered: the last user message, made standalone from "
                                      "the conversation when it is a follow-up.")
    rewritten_by: Literal["llm", "rules"] | None = Field(None, description="How the follow-up was made "
                                                         "standalone, or null when it was not rewritten.")
    answerer: Literal["extractive", "llm"] | None = None
    fallback: str | None = None
    sentences: list[SentenceOut] | None = None


_ERROR_DESCRIPTIONS = {
    401: "Missing or wrong API key.",
    404: "Unknown article or passage id.",
    413: "The request body is over WENDA_MAX_BODY_BYTES.",
    415: "The body is not JSON.",
    422: "The request does not fit the schema, or the question or article is unusable.",
    503: "Not ready: no index yet, an index built with another model, or a writer holds the index.",
}


def error_responses(*codes: int) -> dict:
    """OpenAPI ``responses`` for the error codes a route can answer with."""
    return {code: {"model": ValidationErrorOut if code == 422 else ErrorOut,
                   "description": _ERROR_DESCRIPTIONS[code]} for code in codes}
