"""Prometheus metrics, hand-written (one small class per app, no global
registry): request counts and latency by method, route template and status,
and index size gauges read from the live manifest at scrape time.

Text exposition format 0.0.4:
https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds; the Prometheus client libraries' default buckets, with 25 s on top
# because an ingest of many articles can take that long.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 25.0)
UNMATCHED = "<unmatched>"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    return ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())


def _num(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


class Metrics:
    """Request counters and latency histograms for one app."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self._sum: dict[tuple[str, str, str], float] = defaultdict(float)
        self._count: dict[tuple[str, str, str], int] = defaultdict(int)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        with self._lock:
            counts = self._buckets[key]
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            self._sum[key] += seconds
            self._count[key] += 1

    def render(self, gauges: dict[str, tuple[str, float]]) -> str:
        """The exposition text.

        Args:
            gauges: name -> (help text, value), e.g. ``wenda_index_passages``.
        """
        with self._lock:
            keys = sorted(self._count)
            buckets = {k: list(self._buckets[k]) for k in keys}
            sums = {k: self._sum[k] for k in keys}
            counts = {k: self._count[k] for k in keys}
        out = ["# HELP wenda_http_requests_total HTTP requests by method, route and status.",
               "# TYPE wenda_http_requests_total counter"]
        for m, r, s in keys:
            out.append(f"wenda_http_requests_total{{{_labels(method=m, route=r, status=s)}}} {counts[m, r, s]}")
        out += ["# HELP wenda_http_request_duration_seconds HTTP request latency by method, route and status.",
                "# TYPE wenda_http_request_duration_seconds histogram"]
        for key in keys:
            m, r, s = key
            base = _labels(method=m, route=r, status=s)
            for bound, n in zip(BUCKETS, buckets[key]):
                out.append(f'wenda_http_request_duration_seconds_bucket{{{base},le="{bound}"}} {n}')
            out.append(f'wenda_http_request_duration_seconds_bucket{{{base},le="+Inf"}} {counts[key]}')
            out.append(f"wenda_http_request_duration_seconds_sum{{{base}}} {sums[key]!r}")
            out.append(f"wenda_http_request_duration_seconds_count{{{base}}} {counts[key]}")
        for name, (help_text, value) in gauges.items():
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {_num(value)}"]
        return "\n".join(out) + "\n"


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
