"""Operations: ``/healthz`` (the process is up), ``/readyz`` (the index is
loaded) and ``/metrics`` (Prometheus). Always open: probes and scrapers
carry no API key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from ingest import layout
from ingest.errors import IndexNotFoundError, WendaError

from .deps import EngineDep, MetricsDep
from .metrics import CONTENT_TYPE
from .models import HealthOut, IndexSummary, NotReadyOut, ReadyOut


def _index_gauges(engine) -> dict[str, tuple[str, float]]:
    """Index size from the live manifest (no model is loaded to read it)."""
    gen = layout.current_generation(engine.index_dir)
    counts, number, size = {"articles": 0, "passages": 0}, 0, 0
    if gen is not None:
        try:
            manifest = layout.read_manifest(gen)
            counts, number = manifest["counts"], int(manifest["generation"])
            size = sum(p.stat().st_size for p in gen.rglob("*") if p.is_file())
        except (OSError, ValueError, KeyError):
            # A writer may replace the generation while we read it; report it empty this once.
            gen = None
    return {
        "wenda_index_ready": ("1 when an index generation is published.", int(gen is not None)),
        "wenda_index_articles": ("Articles in the live index.", counts["articles"]),
        "wenda_index_passages": ("Passages in the live index.", counts["passages"]),
        "wenda_index_generation": ("Number of the live index generation.", number),
        "wenda_index_bytes": ("Size of the live index generation on disk.", size),
    }


def ops_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", response_model=HealthOut, summary="The process is up")
    def healthz() -> Any:
        return HealthOut(status="ok")

    @router.get("/readyz", response_model=ReadyOut, summary="The index is loaded and can answer",
                responses={503: {"model": NotReadyOut, "description": "Not ready, and why."}})
    def readyz(request: Request, engine: EngineDep) -> Any:
        """200 with a summary of the live index's manifest, or 503 saying why not."""
        try:
            info = engine.info()
        except WendaError as exc:
            detail = str(exc)
            startup_error = request.app.state.startup_error
            if startup_error and isinstance(exc, IndexNotFoundError):
                detail = f"{detail} {startup_error}"
            return JSONResponse(NotReadyOut(status="not_ready", detail=detail).model_dump(), status_code=503)
        return ReadyOut(status="ready", index=IndexSummary(**{k: info[k] for k in IndexSummary.model_fields}))

    @router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics",
                responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}})
    def metrics(engine: EngineDep, registry: MetricsDep) -> PlainTextResponse:
        """Request counts and latency by route and status; index size gauges."""
        return PlainTextResponse(registry.render(_index_gauges(engine)), media_type=CONTENT_TYPE)

    return router
