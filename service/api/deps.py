"""Dependencies the routes declare: the engine and settings of their own app
(``request.app.state``, never a global), and the API-key check."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.params import Depends as DependsParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..engine import Wenda
from ..settings import Settings
from .limits import RateLimit
from .metrics import Metrics
from .models import ErrorOut

# A child of uvicorn's server log, so that 'wenda serve' shows these lines
# (uvicorn configures only its own loggers) and tests can capture them.
log = logging.getLogger("uvicorn.error.wenda")

MISSING_KEY = "This endpoint needs an API key; send the header 'Authorization: Bearer <WENDA_API_KEY>'."
WRONG_KEY = "The API key is not valid; send the server's WENDA_API_KEY as 'Authorization: Bearer <key>'."


def get_engine(request: Request) -> Wenda:
    return request.app.state.engine


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


EngineDep = Annotated[Wenda, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]

_bearer = HTTPBearer(auto_error=False, scheme_name="WENDA_API_KEY",
                     description="The server's WENDA_API_KEY, as 'Authorization: Bearer <key>'.")


def require_api_key(settings: SettingsDep,
                    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """Refuse the request unless it carries the server's API key.

    Raises:
        HTTPException: 401, without echoing what was sent.
    """
    if settings.api_key is None:
        return
    if credentials is None:
        raise HTTPException(401, MISSING_KEY, headers={"WWW-Authenticate": "Bearer"})
    expected = settings.api_key.get_secret_value().encode()
    # Constant-time comparison, so the key cannot be guessed byte by byte from timings.
    if not secrets.compare_digest(credentials.credentials.encode(), expected):
        raise HTTPException(401, WRONG_KEY, headers={"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True)
class Access:
    """Which routes need the API key and which are rate-limited, decided once
    per app from its settings, so that the OpenAPI schema shows the security
    and the 429 exactly where they apply.

    Args:
        read: dependencies of read routes (articles, passages, /readyz, /metrics).
        write: dependencies of write routes (add and delete articles): the key, then the write limit.
        ask: dependencies of question routes (ask, search, chat): the read key, then the question limit.
    """

    read: list[DependsParam] = field(default_factory=list)
    write: list[DependsParam] = field(default_factory=list)
    ask: list[DependsParam] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        secured = [Depends(require_api_key)] if settings.api_key is not None else []
        read = secured if settings.api_key_reads else []
        writes = RateLimit(settings.rate_limit_writes, what="writes", setting="WENDA_RATE_LIMIT_WRITES")
        asks = RateLimit(settings.rate_limit_asks, what="questions", setting="WENDA_RATE_LIMIT_ASKS")
        return cls(read=read, write=[*secured, Depends(writes)], ask=[*read, Depends(asks)])

    def responses(self, deps: list[DependsParam]) -> dict:
        """The 401 and 429 responses to document for routes with ``deps``."""
        out = {}
        if any(d.dependency is require_api_key for d in deps):
            out[401] = {"model": ErrorOut, "description": "Missing or wrong API key."}
        if any(isinstance(d.dependency, RateLimit) and d.dependency.per_minute > 0 for d in deps):
            out[429] = {"model": ErrorOut, "description": "Too many requests from this client; see Retry-After.",
                        "headers": {"Retry-After": {"description": "Seconds to wait.",
                                                    "schema": {"type": "integer"}}}}
        return out
