"""The app factory: ``create_app(settings)`` is the whole HTTP API as an ASGI app.

OpenAPI at ``/openapi.json``, docs at ``/docs``, Prometheus metrics at ``/metrics``
(``telemetry.http``). Errors are problem details
(``gateway.problems``); the routes are in ``gateway.routes``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from client import AccountClient
from gateway import invoicing, problems, routes
from gateway.settings import GatewaySettings
from gateway.upstream import Upstream
from telemetry import http as telemetry

DESCRIPTION = """Accounts with an append-only event log, billed in periods. Amounts are integers
in minor units of the account's currency (cents for USD). Funds, charges, refunds and closes take
an `Idempotency-Key` header: the command's id. Errors are `application/problem+json` with a stable
`type`."""


class GatewayApp(FastAPI):
    """FastAPI, with error responses documented as ``application/problem+json``."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()
            for operation in (op for path in schema["paths"].values() for op in path.values()):
                for code, answer in operation.get("responses", {}).items():
                    content = answer.get("content", {})
                    if int(code) >= 400 and "application/json" in content:
                        content[problems.PROBLEM_JSON] = content.pop("application/json")
        return super().openapi()


def create_app(settings: GatewaySettings | None = None, *, accounts: AccountClient | None = None) -> FastAPI:
    """The HTTP API over the account workflows (``accounts``, or a client connected on first
    use as ``settings`` say) and the event log at ``settings.database_url``."""
    found = settings or GatewaySettings.from_env()
    app = GatewayApp(title="billing", version="1", description=DESCRIPTION)
    app.state.upstream = Upstream(found, accounts)
    problems.install(app, found.retry_after)
    app.include_router(routes.router)
    app.include_router(invoicing.router)
    telemetry.install(app)  # GET /metrics, and a log line per request
    return app
