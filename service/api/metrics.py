"""Prometheus metrics with ``prometheus_client``, one registry per app (never
the library's global one, so two apps in one process count apart): request
counts and latency by method, route template and status, and index size
gauges read from the live manifest at scrape time.

Label values are bounded: the route is the template (or ``<unmatched>``) and
a method outside ``METHODS`` is counted as ``other``, so made-up methods or
paths cannot grow the label sets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Seconds; the Prometheus client libraries' default buckets, with 25 s on top
# because an ingest of many articles can take that long.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 25.0)
UNMATCHED = "<unmatched>"
#: The methods counted by name (RFC 9110's, less CONNECT and TRACE); any other is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
OTHER_METHOD = "other"
LABELS = ("method", "route", "status")

#: name -> (help text, value), read when Prometheus scrapes.
Gauges = Callable[[], dict[str, tuple[str, float]]]


class _GaugeCollector(Collector):
    def __init__(self, gauges: Gauges) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[Metric]:
        for name, (help_text, value) in self._gauges().items():
            yield GaugeMetricFamily(name, help_text, value=value)

    def describe(self) -> list[Metric]:
        return []  # the names are read at scrape time, not at registration


class Metrics:
    """Request counters and latency histograms for one app, in its own registry.

    Args:
        gauges: called at each scrape for gauges such as ``wenda_index_passages``.
    """

    def __init__(self, gauges: Gauges | None = None) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter("wenda_http_requests", "HTTP requests by method, route and status.", LABELS,
                                 registry=self.registry)
        self._latency = Histogram("wenda_http_request_duration_seconds",
                                  "HTTP request latency by method, route and status.", LABELS, buckets=BUCKETS,
                                  registry=self.registry)
        if gauges is not None:
            self.registry.register(_GaugeCollector(gauges))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method if method in METHODS else OTHER_METHOD, route, str(status))
        self._requests.labels(*labels).inc()
        self._latency.labels(*labels).observe(seconds)

    def render(self) -> bytes:
        """The exposition text of this app's registry."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Times every HTTP request and records it under its route template
    (``/v1/articles/{article_id}``, not the id: label values stay few).

    Args:
        metrics: where to record.
        routes: the app's routes, to name requests that never reached one
            (a 413 sent before routing, say).
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics, routes: list[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    def _route(self, scope: Scope, pristine: Scope) -> str:
        routed = getattr(scope.get("route"), "path", None)
        if routed:
            return routed
        partial = None
        for route in self.routes:
            match, _ = route.matches(pristine)
            if match is Match.FULL:
                return getattr(route, "path", UNMATCHED)
            if match is Match.PARTIAL and partial is None:
                partial = getattr(route, "path", None)
        return partial or UNMATCHED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500
        pristine = dict(scope)  # routing rewrites root_path for mounts

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe(scope["method"], self._route(scope, pristine), status, time.perf_counter() - t0)
