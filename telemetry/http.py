"""The gateway's metrics and request log: ``GET /metrics`` on the API's own port, in
Prometheus' text format, and one log line per request.

- ``billing_http_requests_total{method, route, status}``: requests answered;
- ``billing_http_request_seconds{method, route}``: a histogram of how long they took.

``route`` is the route's template (``/accounts/{account_id}/charges``), never the path: one
series per account would grow without end. A path that matches no route counts as
``unmatched``. Each app has its own registry, so that several apps in one process (the tests)
count apart. The log line (logger ``billing.gateway.access``) names the account and the
command (the ``Idempotency-Key`` the answer carries) in its ``extra`` fields, which JSON logs
show as ``account_id`` and ``command_id``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

log = logging.getLogger("billing.gateway.access")


class HttpMetrics:
    """The gateway's instruments, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("billing_http_requests", "HTTP requests answered",
                                ("method", "route", "status"), registry=self.registry)
        self.seconds = Histogram("billing_http_request_seconds", "Seconds to answer an HTTP request",
                                 ("method", "route"), buckets=SECONDS_BUCKETS, registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MeasuredRequests:
    """ASGI middleware: counts, times and logs every HTTP request (``/metrics`` too)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answer: dict[str, Any] = {"status": 500, "headers": []}  # if the app fails before answering

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer.update(status=message["status"], headers=message.get("headers", []))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._record(scope, answer, time.perf_counter() - started)

    def _record(self, scope: Scope, answer: dict[str, Any], seconds: float) -> None:
        route = getattr(scope.get("route"), "path", UNMATCHED)  # the router sets the route it matched
        method, status = scope["method"], answer["status"]
        self.metrics.requests.labels(method, route, str(status)).inc()
        self.metrics.seconds.labels(method, route).observe(seconds)
        context = {"method": method, "route": route, "status": status,
                   "duration_ms": round(seconds * 1000, 3)}
        if account_id := scope.get("path_params", {}).get("account_id"):
            context["account_id"] = account_id
        if command_id := _header(answer["headers"], b"idempotency-key"):
            context["command_id"] = command_id
        log.info("%s %s %s %.1f ms", method, scope["path"], status, seconds * 1000, extra=context)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    return next((value.decode("latin-1") for key, value in headers if key.lower() == name), None)


def install(app: FastAPI) -> HttpMetrics:
    """Measure every request of ``app`` and serve ``GET /metrics`` (left out of the OpenAPI)."""
    metrics = HttpMetrics()
    app.add_middleware(MeasuredRequests, metrics=metrics)

    async def exposition(_: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(METRICS_PATH, exposition, methods=["GET"], include_in_schema=False)
    return metrics
