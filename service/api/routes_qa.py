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


def took_ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


def qa_router(models: QueryModels, access: Access) -> APIRouter:
    """The question routes of one app (their request models carry its limits)."""
    router = APIRouter(tags=["questions"], dependencies=access.ask)
    errors = {**error_responses(413, 415, 422, 503), **access.responses(access.ask)}
    AskRequest, SearchRequest = models.ask, models.search  # noqa: N806 - classes

    @router.post("/v1/ask", response_model=AskResponse, responses=errors,
                 summary="Answer a question, citing the source paragraph")
    def ask(body: AskRequest, engine: EngineDep) -> Any:  # type: ignore[valid-type]
        """The same object as ``wenda ask --json``, plus ``took_ms``. When the
        articles do not answer, ``answerable`` is false and there are no citations."""
        t0 = time.perf_counter()
        answer = engine.ask(body.question, k=body.k, mode=body.mode)
        return AskResponse(**answer.to_dict(), took_ms=took_ms(t0))

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

    @router.post("/v1/chat/completions", response_model=ChatCompletion, tags=["openai"],
                 summary="OpenAI-compatible chat completion (the last user message is the question)",
                 responses={**errors, 200: {"description": "A chat completion, or with `stream: true` "
                                            "server-sent `chat.completion.chunk` events.",
                                            "content": {"text/event-stream": {"schema": SSE_EVENT}}}})
    def chat_completions(body: ChatRequest, engine: EngineDep) -> Any:
        """Works with OpenAI clients: ``base_url=http://HOST:PORT/v1``. The reply
        is the answer with its citations written as [1], [2]...; ``citations``
        holds them as data. ``stream: true`` sends the same reply as events."""
        answer = engine.ask(last_user_message(body.messages))
        completion = chat_completion(answer, model=body.model)
        if body.stream:
            return StreamingResponse(chat_events(completion), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        return completion

    return router


def last_user_message(messages: list[ChatMessage]) -> str:
    """The text of the last message with role ``user``.

    Raises:
        BadQueryError: no user message, or its text is not valid Unicode.
    """
    for message in reversed(messages):
        if message.role != "user":
            continue
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
    raise BadQueryError("No message with role 'user' in 'messages'; the last user message is the question.")


def chat_content(answer: Answer) -> str:
    """The answer, then one line per citation: ``[1] title · section · 第N段：“quote”``."""
    if not answer.answerable:
        return answer.answer
    marks = "".join(f"[{i}]" for i in range(1, len(answer.citations) + 1))
    lines = [f"{answer.answer} {marks}".rstrip(), ""]
    for i, c in enumerate(answer.citations, start=1):
        where = " · ".join(part for part in (c.title, c.section, f"第{c.paragraph}段") if part)
        lines.append(f"[{i}] {where}：“{c.quote}”")
    return "\n".join(lines)


def chat_completion(answer: Answer, *, model: str) -> ChatCompletion:
    d = answer.to_dict()
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}", object="chat.completion", created=int(time.time()), model=model,
        choices=[ChatChoice(index=0, message=ChatReply(role="assistant", content=chat_content(answer)),
                            finish_reason="stop")],
        answerable=answer.answerable, citations=[CitationOut(**c) for c in d["citations"]])


def chat_events(completion: ChatCompletion) -> Iterator[str]:
    """Server-sent events as OpenAI streams them: a role delta, the content,
    a final chunk with ``finish_reason`` (and the citations), then ``[DONE]``."""
    base = {"id": completion.id, "object": "chat.completion.chunk", "created": completion.created,
            "model": completion.model}

    def event(delta: dict, finish: str | None, **extra) -> str:
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""}, None)
    yield event({"content": completion.choices[0].message.content}, None)
    yield event({}, "stop", answerable=completion.answerable,
                citations=[c.model_dump() for c in completion.citations])
    yield "data: [DONE]\n\n"
