"""The HTTP service: ``create_app(settings)`` builds one FastAPI app over one
index directory. Settings, the engine and the metrics live on ``app.state``
(no module-level app or settings), so two apps with different settings can
run side by side.

Errors are mapped in one table (``ERROR_STATUS``); request validation errors
become 422 with a one-line ``detail`` saying what to fix; a body that is not
JSON is 415; a body over ``WENDA_MAX_BODY_BYTES`` is 413.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from importlib import metadata, resources
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.errors import (
    AnswererUnavailableError,
    BadQueryError,
    CorpusError,
    EmptyCorpusError,
    IndexBusyError,
    IndexMismatchError,
    IndexNotFoundError,
    ModelUnavailableError,
    NotFoundError,
    WendaError,
)

from .api.deps import Access, log
from .api.metrics import Metrics, MetricsMiddleware
from .api.models import query_models
from .api.routes_articles import articles_router
from .api.routes_ops import index_gauges, ops_router
from .api.routes_qa import qa_router
from .engine import Wenda
from .runtime import set_openmp_defaults
from .settings import Settings, SettingsError

STATIC_DIR = Path(__file__).resolve().parent / "static"
DOCS_ASSETS = "/docs-assets"

#: How each core error is answered over HTTP (looked up along the class's MRO).
ERROR_STATUS: dict[type[WendaError], int] = {
    BadQueryError: 422,
    CorpusError: 422,
    EmptyCorpusError: 422,
    SettingsError: 422,
    NotFoundError: 404,
    IndexNotFoundError: 503,
    IndexMismatchError: 503,
    IndexBusyError: 503,
    AnswererUnavailableError: 503,
    ModelUnavailableError: 503,
}
# The page loads only its own files (no CDN: the machines may be offline).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def status_for(exc: WendaError) -> int:
    """The HTTP status of a core error (500 for a class missing from the table: a bug)."""
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 500


# ---- handlers -----------------------------------------------------------------------
async def _wenda_error(request: Request, exc: WendaError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, IndexBusyError) else None
    return JSONResponse({"detail": str(exc)}, status_code=status_for(exc), headers=headers)


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _where(loc) -> str:
    return ".".join(str(part) for part in loc)


def _message(error: dict) -> str:
    """pydantic's message, made specific where it says too little."""
    kind, loc = error["type"], tuple(error["loc"])
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        return f"Invalid JSON at character {loc[-1]} ({reason}); send a JSON object."
    if kind == "missing" and loc == ("body",):
        return "The request body is missing; send a JSON object."
    if kind in ("model_type", "model_attributes_type", "dict_type") and loc == ("body",):
        return "The body must be a JSON object."
    return error["msg"]


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    content_type = request.headers.get("content-type")
    if (not _is_json(content_type) and any(tuple(e["loc"]) == ("body",) and e["type"] != "missing"
                                           for e in errors)):
        got = f"got {content_type!r}" if content_type else "no Content-Type was sent"
        return JSONResponse({"detail": f"The body must be JSON, sent with 'Content-Type: application/json' "
                                       f"({got})."}, status_code=415)
    issues = []
    for e in errors:
        loc = list(e["loc"])
        if e["type"] == "json_invalid":
            loc = loc[:1]
        issues.append({"loc": loc, "msg": _message(e), "type": e["type"]})
    detail = "; ".join(f"{_where(i['loc'])}: {i['msg']}" for i in issues)
    return JSONResponse({"detail": detail, "errors": issues}, status_code=422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI's answer, except: a 405 lists every method of the path
    (Starlette asks only the first route that matched it: GET, not DELETE);
    a body that is not UTF-8, or nested too deeply to parse, is invalid JSON
    (422 with what to fix), not FastAPI's bare 400."""
    cause = exc.__cause__
    if exc.status_code == 400 and isinstance(cause, (UnicodeDecodeError, RecursionError)):
        msg = (f"Invalid JSON: the body is not UTF-8 text (bad byte at position {cause.start}); send UTF-8 JSON."
               if isinstance(cause, UnicodeDecodeError) else
               # Python's JSON parser recurses once per level and stops near 1,000.
               "Invalid JSON: it is nested too deeply to read; send the JSON object the endpoint documents.")
        issue = {"loc": ["body"], "msg": msg, "type": "json_invalid"}
        return JSONResponse({"detail": f"body: {msg}", "errors": [issue]}, status_code=422)
    if exc.status_code == 405:
        path = request.scope.get("path", "")
        methods = {m for route in request.app.state.routes if getattr(route, "methods", None)
                   and getattr(route, "path_regex", None) and route.path_regex.match(path) for m in route.methods}
        if methods:
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(methods))}
    return await http_exception_handler(request, exc)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette logs the traceback after this handler has answered.
    return JSONResponse({"detail": "Internal error; the server log has the details."}, status_code=500)


# ---- the body limit -----------------------------------------------------------------
class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413: at once when
    Content-Length says so, or as soon as a chunked body passes the limit."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _detail(self, size: int | None) -> str:
        said = f"{size} bytes" if size is not None else f"over {self.max_bytes} bytes"
        return (f"The request body is {said}; the limit is {self.max_bytes} bytes (WENDA_MAX_BODY_BYTES). "
                "Send fewer or shorter articles per request.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await JSONResponse({"detail": self._detail(int(length))}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises an HTTPException met while reading the body.
                    raise HTTPException(413, self._detail(None))
            return message

        await self.app(scope, limited, send)


# ---- startup ---------------------------------------------------------------------------
def prepare(app: FastAPI) -> None:
    """Build the index from the corpus when there is none (as the CLI does),
    then open it, so the first question does not pay for loading. Failures
    leave the service up and not ready; ``/readyz`` says why."""
    engine: Wenda = app.state.engine
    if engine.can_auto_ingest():
        corpus = engine.settings.corpus_dir
        log.info("No index at %s; building it from %s ...", engine.index_dir, corpus)
        try:
            report = engine.ingest()
        except WendaError as exc:
            app.state.startup_error = f"Building it from {corpus} at startup failed: {exc}"
            log.error("%s", app.state.startup_error)
            return
        log.info("Indexed %d articles, %d passages.", report.articles_total, report.passages_total)
    try:
        engine.snapshot()
        engine.warm_up()
    except WendaError as exc:
        log.warning("Not ready: %s", exc)


@asynccontextmanager
async def _lifespan(app: FastAPI):
    await run_in_threadpool(prepare, app)
    yield


# ---- the app ----------------------------------------------------------------------------
def _version() -> str:
    try:
        return metadata.version("wenda")
    except metadata.PackageNotFoundError:
        return "0"


def create_app(settings: Settings) -> FastAPI:
    """Build the wenda HTTP app.

    Args:
        settings: the settings (built once by the caller, e.g. ``load_settings()``).

    Returns:
        The FastAPI app: the JSON API under ``/v1``, ``/healthz``, ``/readyz``,
        ``/metrics``, the OpenAPI schema at ``/openapi.json`` and the web page at ``/``.
    """
    set_openmp_defaults()  # before the engine loads faiss or the embedding model
    app = FastAPI(
        title="wenda (问答)", version=_version(), lifespan=_lifespan, docs_url=None, redoc_url=None,
        description="Answers questions about Chinese news articles, citing the exact source paragraph.",
    )
    app.state.settings = settings
    app.state.engine = Wenda(settings)
    app.state.metrics = Metrics(gauges=lambda: index_gauges(app.state.engine))
    app.state.startup_error = None

    access = Access.from_settings(settings)
    routers = [qa_router(query_models(settings.max_question_chars), access), articles_router(access),
               ops_router(access)]
    for router in routers:
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # The interactive API docs with Swagger UI's files from the fastapi-offline
    # wheel (Swagger UI 5, which reads OpenAPI 3.1): FastAPI's default page
    # loads them from a CDN and is blank offline.
    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png")

    app.mount(DOCS_ASSETS, StaticFiles(directory=str(resources.files("fastapi_offline") / "static")),
              name="docs-assets")

    app.add_exception_handler(WendaError, _wenda_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
    # The last one added runs first: metrics see every request, the 413s included.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.state.routes = [route for router in routers for route in router.routes] + list(app.router.routes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics, routes=app.state.routes)
    return app
