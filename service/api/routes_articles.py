"""Articles and passages: add or replace (``POST /v1/articles``), read, delete;
read one passage. A write is on disk and searchable when the call returns."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from ingest.errors import CorpusError
from ingest.models import Article
from ingest.readers import article_from_record

from .deps import Access, EngineDep, SettingsDep, log
from .models import (
    ArticleIn,
    ArticleOut,
    DeleteResponse,
    IngestResponse,
    ParagraphOut,
    PassageOut,
    SkippedOut,
    error_responses,
)
from .routes_qa import took_ms

_ARTICLE_SCHEMA = TypeAdapter(ArticleIn).json_schema(ref_template="#/components/schemas/{model}")
_ARTICLES_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "title": "Articles",
        "description": "One article object, or a list of them.",
        "anyOf": [_ARTICLE_SCHEMA, {"type": "array", "items": _ARTICLE_SCHEMA, "minItems": 1}],
    }}},
}
_ONE = TypeAdapter(ArticleIn)
_MANY = TypeAdapter(list[ArticleIn])
ArticleId = Annotated[str, Path(description="Article id, e.g. 004_ef22c67862e0d2cc.")]
PassageId = Annotated[str, Path(description="Passage id, '<article_id>:<paragraph>', or "
                                            "'<article_id>:<paragraph>.<part>' for a long paragraph's parts.")]


def parse_articles(body: Any) -> list[ArticleIn]:
    """One article object or a non-empty list of them.

    Raises:
        RequestValidationError: with locations under ``body``.
    """
    if isinstance(body, list) and not body:
        raise RequestValidationError([{"type": "too_short", "loc": ("body",),
                                       "msg": "The list is empty; send at least one article."}])
    if not isinstance(body, (dict, list)):
        # bytes: a body that is not JSON (the handler turns this into 415).
        raise RequestValidationError([{"type": "model_attributes_type" if isinstance(body, bytes) else "articles_type",
                                       "loc": ("body",),
                                       "msg": "Send an article object or a list of article objects."}])
    try:
        return _MANY.validate_python(body) if isinstance(body, list) else [_ONE.validate_python(body)]
    except ValidationError as exc:
        raise RequestValidationError(
            [{"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"]} for e in exc.errors()]) from None


def check_article_count(body: Any, limit: int) -> None:
    """Refuse a list of more than ``limit`` articles before any is validated.

    Raises:
        HTTPException: 413, naming WENDA_MAX_ARTICLES_PER_REQUEST.
    """
    if isinstance(body, list) and len(body) > limit:
        raise HTTPException(413, f"The request has {len(body)} articles; the limit is {limit} per request "
                                 "(WENDA_MAX_ARTICLES_PER_REQUEST). Send them in several requests.")


def to_articles(items: list[ArticleIn], *, many: bool) -> list[Article]:
    """Core articles from request items (the same rules as ``.jsonl`` ingest).

    Raises:
        CorpusError: an unusable id or text, or an id sent twice; the message
            names the item (``body.2.id: ...``).
    """
    out, seen = [], set()
    for i, item in enumerate(items):
        where = f"body.{i}" if many else "body"
        try:
            article = article_from_record(item.model_dump())
        except CorpusError as exc:
            raise CorpusError(f"{where}: {exc}") from exc
        if article.article_id in seen:
            raise CorpusError(f"{where}.id: article id {article.article_id!r} appears more than once in this "
                              "request; send each article once.")
        seen.add(article.article_id)
        out.append(article)
    return out


def articles_router(access: Access) -> APIRouter:
    router = APIRouter(tags=["articles"])
    read_errors = {**error_responses(404, 503), **access.responses(access.read)}
    write_errors = access.responses(access.write)

    @router.post("/v1/articles", response_model=IngestResponse, dependencies=access.write,
                 responses={**error_responses(413, 415, 422, 503), **write_errors},
                 openapi_extra={"requestBody": _ARTICLES_BODY},
                 summary="Add or replace articles (searchable when the call returns)")
    def add_articles(body: Annotated[Any, Body()], engine: EngineDep, settings: SettingsDep) -> Any:
        """Each article: ``title``, ``text`` and optional ``id``, ``date``, ``source``,
        ``url`` (http or https). An article whose content is unchanged is left
        alone. At most WENDA_MAX_ARTICLES_PER_REQUEST articles and
        WENDA_MAX_BODY_BYTES bytes a request."""
        t0 = time.perf_counter()
        check_article_count(body, settings.max_articles_per_request)
        many = isinstance(body, list)
        articles = to_articles(parse_articles(body), many=many)
        # An HTTP write never waits for another writer: 503 with Retry-After
        # instead of holding a worker thread.
        report = engine.write(upserts=articles, wait=0, maintain="background")
        log.info("articles: added %s, updated %s, unchanged %s", report.added, report.updated, report.unchanged)
        return IngestResponse(
            added=report.added, updated=report.updated, unchanged=report.unchanged,
            skipped=[SkippedOut(path=s.path, reason=s.reason) for s in report.skipped],
            passages_embedded=report.passages_embedded, passages_recut=report.passages_recut,
            articles_total=report.articles_total,
            passages_total=report.passages_total, took_ms=took_ms(t0))

    @router.get("/v1/articles/{article_id}", response_model=ArticleOut, dependencies=access.read,
                responses=read_errors, summary="An article with its numbered paragraphs")
    def get_article(article_id: ArticleId, engine: EngineDep) -> Any:
        """The same object as ``wenda show --json`` (plus ``is_heading``)."""
        article, paragraphs = engine.article(article_id)
        return ArticleOut(
            article_id=article.article_id, title=article.title, text=article.text, date=article.date,
            source=article.source, url=article.url,
            paragraphs=[ParagraphOut(paragraph=p.paragraph, section=p.section, start=p.start, end=p.end,
                                     text=p.text, is_heading=p.is_heading) for p in paragraphs])

    @router.delete("/v1/articles/{article_id}", response_model=DeleteResponse, dependencies=access.write,
                   responses={**error_responses(404, 503), **write_errors}, summary="Remove an article")
    def delete_article(article_id: ArticleId, engine: EngineDep) -> Any:
        t0 = time.perf_counter()
        report = engine.delete(article_id, wait=0, maintain="background")
        log.info("articles: deleted %s", article_id)
        return DeleteResponse(deleted=article_id, articles_total=report.articles_total,
                              passages_total=report.passages_total, took_ms=took_ms(t0))

    @router.get("/v1/passages/{passage_id}", response_model=PassageOut, dependencies=access.read,
                responses=read_errors, summary="One passage")
    def get_passage(passage_id: PassageId, engine: EngineDep) -> Any:
        return PassageOut(**engine.passage(passage_id).to_dict())

    return router
