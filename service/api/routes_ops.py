"""Operations: ``/healthz`` (the process is up, always open), ``/readyz``
(the index is loaded) and ``/metrics`` (Prometheus). The last two say how
big the index is and need the API key when ``WENDA_API_KEY_READS`` is on;
neither shows a path of the server's disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ingest.errors import IndexNotFoundError, WendaError

from .deps import Access, EngineDep, MetricsDep
from .metrics import CONTENT_TYPE
from .models import HealthOut, IndexSummary, NotReadyOut, ReadyOut


def index_gauges(engine) -> dict[str, tuple[str, float]]:
    """Index size from the latest commit (no model is loaded to read it)."""
    counts, number, size = {"articles": 0, "passages": 0}, 0, 0
    try:
        stats = engine.backend().stats() if engine.has_index() else None
    except (OSError, WendaError, ValueError):
        stats = None
    if stats is not None:
        counts, number, size = stats["counts"], stats["generation"], stats["bytes"]
    return {
        "wenda_index_ready": ("1 when an index generation is published.", int(stats is not None)),
        "wenda_index_articles": ("Articles in the live index.", counts["articles"]),
        "wenda_index_passages": ("Passages in the live index.", counts["passages"]),
        "wenda_index_generation": ("Number of the live index generation.", number),
        "wenda_index_bytes": ("Size of the index on disk.", size),
    }


def without_paths(message: str, places: dict[str, Path]) -> str:
    """``message`` with each of ``places``' paths (as configured and absolute)
    replaced by ``<NAME>``: the server's layout is not the caller's business.

    Args:
        places: setting name -> path, e.g. ``{"WENDA_INDEX_DIR": Path(".wenda/index")}``.
    """
    forms = {form: f"<{name}>" for name, path in places.items()
             for form in (str(path), str(Path(path).resolve())) if form not in ("", ".")}
    for form in sorted(forms, key=len, reverse=True):
        message = message.replace(form, forms[form])
    return message


def ops_router(access: Access) -> APIRouter:
    router = APIRouter(tags=["operations"])
    protected = {**access.responses(access.read)}

    @router.get("/healthz", response_model=HealthOut, summary="The process is up")
    def healthz() -> Any:
        return HealthOut(status="ok")

    @router.get("/readyz", response_model=ReadyOut, summary="The index is loaded and can answer",
                dependencies=access.read,
                responses={503: {"model": NotReadyOut, "description": "Not ready, and why."}, **protected})
    def readyz(request: Request, engine: EngineDep) -> Any:
        """200 with a summary of the live index's manifest, or 503 saying why not."""
        try:
            info = engine.info()
        except WendaError as exc:
            detail = str(exc)
            startup_error = request.app.state.startup_error
            if startup_error and isinstance(exc, IndexNotFoundError):
                detail = f"{detail} {startup_error}"
            places = {"WENDA_INDEX_DIR": engine.index_dir, "WENDA_CORPUS_DIR": engine.settings.corpus_dir}
            return JSONResponse(NotReadyOut(status="not_ready", detail=without_paths(detail, places)).model_dump(),
                                status_code=503)
        return ReadyOut(status="ready", index=IndexSummary(**{k: info[k] for k in IndexSummary.model_fields}))

    @router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics", dependencies=access.read,
                responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}, **protected})
    def metrics(registry: MetricsDep) -> Response:
        """Request counts and latency by route and status; index size gauges."""
        return Response(registry.render(), media_type=CONTENT_TYPE)

    return router
