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
    """Which routes need the API key, decided once per app from its settings,
    so that the OpenAPI schema shows the security exactly where it applies.

    Args:
        read: dependencies of read routes (ask, search, articles, passages).
        write: dependencies of write routes (add and delete articles).
    """

    read: list[DependsParam] = field(default_factory=list)
    write: list[DependsParam] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        if settings.api_key is None:
            return cls()
        secured = [Depends(require_api_key)]
        return cls(read=secured if settings.api_key_reads else [], write=secured)

    def responses(self, deps: list[DependsParam]) -> dict:
        """The 401 response to document for routes with ``deps``."""
        return {401: {"model": ErrorOut, "description": "Missing or wrong API key."}} if deps else {}
