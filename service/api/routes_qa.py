"""Questions: ``POST /v1/ask``, ``POST /v1/search`` and the OpenAI-compatible
``POST /v1/chat/completions``. Each handler parses, calls the engine once
and renders; handlers are plain ``def`` so FastAPI runs them in its thread
pool (the engine blocks).

No ``from __future__ import annotations`` here: the request models are local
classes (built per app), and FastAPI must see them, not their names.
"""

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from ingest.errors import BadQueryError
from retriever.answer import Answer
from retriever.generate import GeneratedAnswer, Token

from .deps import Access, EngineDep, SettingsDep
from .models import (
    AskResponse,
    ChatChoice,
    ChatCompletion,
    ChatMessage,
    ChatReply,
    ChatRequest,
    CitationOut,
    QueryModels,
    SearchHitOut,
    SearchResponse,
    error_responses,
)


# One server-sent event (OpenAPI 3.1: the schema of a text/event-stream is per event).
SSE_EVENT = {"type": "object", "required": ["data"], "properties": {"data": {
    "type": "string", "description": "A JSON `chat.completion.chunk`; the last event is `[DONE]`."}}}
ASK_EVENT = {"type": "object", "required": ["event", "data"], "properties": {
    "event": {"type": "string", "enum": ["delta", "answer", "done"]},
    "data": {"type": "string", "description": "JSON. `delta` {text}: the LLM's words as they come, unchecked; "
                                              "`answer`: the checked answer (the ask response plus `corrected`: "
                                              "true when it differs from the streamed text, which it replaces)."}}}
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
#: What the final chunk of a chat stream carries as data, beside the OpenAI fields.
CHAT_EXTRAS = {"answerable", "citations", "question", "rewritten_by", "answerer", "fallback", "sentences"}


def took_ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


def _sse(events: Iterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


def qa_router(models: QueryModels, access: Access) -> APIRouter:
    """The question routes of one app (their request models carry its limits)."""
    router = APIRouter(tags=["questions"], dependencies=access.ask)
    errors = {**error_responses(413, 415, 422, 503), **access.responses(access.ask)}
    AskRequest, SearchRequest = models.ask, models.search  # noqa: N806 - classes

    @router.post("/v1/ask", response_model=AskResponse, response_model_exclude_unset=True,
                 summary="Answer a question, citing the source paragraph",
                 responses={**errors, 200: {"description": "The answer, or with `stream: true` server-sent "
                                            "events `delta`, `answer`, `done`.",
                                            "content": {"text/event-stream": {"schema": ASK_EVENT}}}})
    def ask(body: AskRequest, engine: EngineDep) -> Any:  # type: ignore[valid-type]
        """The same object as ``wenda ask --json``, plus ``took_ms``. When the
        articles do not answer, ``answerable`` is false and there are no
        citations. When an LLM is asked (``answerer``), also ``answerer``,
        ``fallback`` and ``sentences``."""
        t0 = time.perf_counter()
        question, extra = body.question, {}
        if body.history is not None:
            question, how = engine.standalone(question, [("user", h) for h in body.history], answerer=body.answerer)
            extra = {"rewritten_by": how}
        if engine.uses_llm(body.answerer):
            if body.stream:
                return _sse(ask_events(engine.stream_llm(question, k=body.k, mode=body.mode), t0, **extra))
            answer = engine.ask_llm(question, k=body.k, mode=body.mode)
        else:
            answer = engine.ask(question, k=body.k, mode=body.mode)
            if body.stream:
                return _sse(ask_events(iter([Token(answer.answer), answer]), t0, **extra))
        return AskResponse(**answer.to_dict(), **extra, took_ms=took_ms(t0))

    @router.post("/v1/search", response_model=SearchResponse, responses=errors,
                 summary="Rank passages for a query")
    def search(body: SearchRequest, engine: EngineDep, settings: SettingsDep) -> Any:  # type: ignore[valid-type]
        """Passages best first, with their citation fields and scores."""
        t0 = time.perf_counter()
        results = engine.search(body.query, k=body.k, mode=body.mode)
        return SearchResponse(
            query=body.query, mode=body.mode or settings.mode,
            results=[SearchHitOut(**p.to_dict(), score=h.score, source=h.source) for h, p in results],
            took_ms=took_ms(t0))

    @router.post("/v1/chat/completions", response_model=ChatCompletion, response_model_exclude_unset=True,
                 tags=["openai"], summary="OpenAI-compatible chat completion (the last user message is the "
                                          "question, read with the conversation before it)",
                 responses={**errors, 200: {"description": "A chat completion, or with `stream: true` "
                                            "server-sent `chat.completion.chunk` events.",
                                            "content": {"text/event-stream": {"schema": SSE_EVENT}}}})
    def chat_completions(body: ChatRequest, engine: EngineDep) -> Any:
        """Works with OpenAI clients: ``base_url=http://HOST:PORT/v1``. The
        whole conversation is read: a follow-up (那江西呢？) is answered as the
        standalone question in ``question``. The reply is the answer with its
        citations written as [1], [2]...; ``citations`` holds them as data.
        ``stream: true`` sends it as events: with an LLM, its words as they
        come, then the citations (or, when a sentence was dropped, the checked
        answer after a line saying so); the final chunk carries the checked
        answer as data."""
        history, message = conversation(body.messages)
        question, how = engine.standalone(message, history, answerer=body.answerer)
        if engine.uses_llm(body.answerer):
            if body.stream:
                return _sse(chat_stream(engine.stream_llm(question), model=body.model, question=question,
                                        rewritten_by=how))
            answer = engine.ask_llm(question)
        else:
            answer = engine.ask(question)
        completion = chat_completion(answer, model=body.model, question=question, rewritten_by=how)
        if body.stream:
            return _sse(chat_events(completion))
        return completion

    return router


def message_text(message: ChatMessage) -> str:
    """The text of one message (its text parts joined).

    Raises:
        BadQueryError: the text is not valid Unicode.
    """
    content = message.content
    if isinstance(content, list):
        content = "\n".join(part.text for part in content if part.type == "text" and part.text)
    text = content or ""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadQueryError("The question is not valid Unicode text (it has a lone surrogate); "
                            "send UTF-8 text.") from None
    return text


def conversation(messages: list[ChatMessage]) -> tuple[list[tuple[str, str]], str]:
    """The earlier user and assistant turns, (role, text), oldest first, and
    the last user message.

    Raises:
        BadQueryError: no user message, or text that is not valid Unicode.
    """
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    if last is None:
        raise BadQueryError("No message with role 'user' in 'messages'; the last user message is the question.")
    history = [(m.role, message_text(m)) for m in messages[:last] if m.role in ("user", "assistant")]
    return history, message_text(messages[last])


def last_user_message(messages: list[ChatMessage]) -> str:
    """The text of the last message with role ``user``.

    Raises:
        BadQueryError: no user message, or its text is not valid Unicode.
    """
    return conversation(messages)[1]


def _where(c) -> str:
    return " · ".join(part for part in (c.title, c.section, f"第{c.paragraph}段") if part)


def chat_content(answer: Answer | GeneratedAnswer, *, question: str | None = None) -> str:
    """The answer, then one line per citation: ``[1] title · section · 第N段：“quote”``.

    An LLM answer keeps its own marks ([n], the passage's number in the
    prompt); a fallback to the extractive answer says why, in brackets
    before it; ``question`` (a rewritten follow-up) heads the reply.
    """
    head = f"问题：{question}\n\n" if question else ""
    fallback = getattr(answer, "fallback", None)
    answerer = getattr(answer, "answerer", "extractive")
    note = f"（{fallback}）\n\n" if fallback else ""
    if not answer.answerable:
        return head + note + answer.answer
    if answerer == "llm":
        lines = [answer.answer, ""] + [f"[{m}] {_where(c)}：“{c.quote}”"
                                       for m, c in zip(answer.markers, answer.citations)]
        return head + "\n".join(lines)
    marks = "".join(f"[{i}]" for i in range(1, len(answer.citations) + 1))
    lines = [f"{answer.answer} {marks}".rstrip(), ""]
    lines += [f"[{i}] {_where(c)}：“{c.quote}”" for i, c in enumerate(answer.citations, start=1)]
    return head + note + "\n".join(lines)


def chat_completion(answer: Answer | GeneratedAnswer, *, model: str, question: str,
                    rewritten_by: str | None = None) -> ChatCompletion:
    d = answer.to_dict()
    extra = {k: d[k] for k in ("answerer", "fallback", "sentences") if k in d}
    content = chat_content(answer, question=question if rewritten_by else None)
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}", object="chat.completion", created=int(time.time()), model=model,
        choices=[ChatChoice(index=0, message=ChatReply(role="assistant", content=content), finish_reason="stop")],
        answerable=answer.answerable, citations=[CitationOut(**c) for c in d["citations"]],
        question=question, rewritten_by=rewritten_by, **extra)


def _chunk(base: dict, delta: dict, finish: str | None = None, **extra) -> str:
    chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"


def _extras(completion: ChatCompletion) -> dict:
    return completion.model_dump(include=CHAT_EXTRAS, exclude_unset=True)


def chat_events(completion: ChatCompletion) -> Iterator[str]:
    """A finished reply as OpenAI streams one: a role delta, the content,
    a final chunk with ``finish_reason`` (and the citations), then ``[DONE]``."""
    base = {"id": completion.id, "object": "chat.completion.chunk", "created": completion.created,
            "model": completion.model}
    yield _chunk(base, {"role": "assistant", "content": ""})
    yield _chunk(base, {"content": completion.choices[0].message.content})
    yield _chunk(base, {}, "stop", **_extras(completion))
    yield "data: [DONE]\n\n"


def chat_stream(items: Iterator[Token | GeneratedAnswer], *, model: str, question: str,
                rewritten_by: str | None) -> Iterator[str]:
    """An LLM answer as OpenAI streams: the LLM's words as they come; then
    its citations, or, when the check dropped a sentence or fell back, a line
    saying so and the checked reply; a final chunk with the checked answer as
    data (``answer``, ``corrected``, ``citations``, ``sentences``...); [DONE].
    Joined, the content equals the non-streamed reply when nothing was dropped."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model}
    yield _chunk(base, {"role": "assistant", "content": ""})
    if rewritten_by:
        yield _chunk(base, {"content": f"问题：{question}\n\n"})
    streamed: list[str] = []
    final: GeneratedAnswer | None = None
    for item in items:
        if isinstance(item, Token):
            streamed.append(item.text)
            yield _chunk(base, {"content": item.text})
        else:
            final = item
    text = "".join(streamed).strip()
    full = chat_content(final)
    corrected = bool(text) and not (final.answerer == "llm" and final.answerable and final.answer == text)
    if not text:
        tail = full
    elif not corrected:
        tail = full[len(final.answer):]
    else:
        note = ("核对后的回答（删去了引文不支持的句子） Checked answer, unsupported sentences removed:"
                if final.answerer == "llm" and final.answerable else "更正 Corrected:")
        tail = f"\n\n{note}\n{full}"
    if tail:
        yield _chunk(base, {"content": tail})
    completion = chat_completion(final, model=model, question=question, rewritten_by=rewritten_by)
    yield _chunk(base, {}, "stop", answer=final.answer, corrected=corrected, **_extras(completion))
    yield "data: [DONE]\n\n"


def ask_events(items: Iterator[Token | GeneratedAnswer | Answer], t0: float, **extra) -> Iterator[str]:
    """``/v1/ask`` as server-sent events: ``delta`` per piece of text, then
    ``answer`` (the checked answer; ``corrected`` when text was streamed and
    the answer is not it), then ``done``."""
    streamed: list[str] = []
    for item in items:
        if isinstance(item, Token):
            streamed.append(item.text)
            yield f"event: delta\ndata: {json.dumps({'text': item.text}, ensure_ascii=False)}\n\n"
            continue
        out = AskResponse(**item.to_dict(), **extra, took_ms=took_ms(t0)).model_dump(exclude_unset=True)
        text = "".join(streamed).strip()
        out["corrected"] = bool(text) and item.answer != text
        yield f"event: answer\ndata: {json.dumps(out, ensure_ascii=False)}\n\n"
    yield "event: done\ndata: {}\n\n"
