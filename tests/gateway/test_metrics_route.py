"""``GET /metrics`` and the request log, in process: routes are counted by template, unknown
paths as ``unmatched``, each app apart; ``/metrics`` is not part of the OpenAPI; each request's
log line names its account."""

from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.settings import GatewaySettings
from tests.gateway.conftest import asgi_client


def requests_counted(text: str) -> dict[tuple[str, str, str], float]:
    return {(s.labels["method"], s.labels["route"], s.labels["status"]): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == "billing_http_requests_total"}


async def test_routes_are_counted_by_template_and_unknown_paths_as_unmatched(
        gateway_settings: GatewaySettings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="billing.gateway.access")
    async with asgi_client(gateway_settings) as http:
        assert (await http.get("/no/such/path")).status_code == 404
        assert (await http.get("/accounts/nobody/events")).status_code == 404
        assert (await http.get("/accounts/somebody/events")).status_code == 404
        scraped = await http.get("/metrics")
        openapi = (await http.get("/openapi.json")).json()
    assert scraped.headers["content-type"].startswith("text/plain")
    assert requests_counted(scraped.text) == {("GET", "unmatched", "404"): 1,
                                              ("GET", "/accounts/{account_id}/events", "404"): 2}
    assert "/metrics" not in openapi["paths"]
    logged = [(r.__dict__.get("account_id"), r.__dict__["route"], r.__dict__["status"])
              for r in caplog.records if r.name == "billing.gateway.access"]
    assert logged[:3] == [(None, "unmatched", 404), ("nobody", "/accounts/{account_id}/events", 404),
                          ("somebody", "/accounts/{account_id}/events", 404)]


async def test_each_app_counts_its_own_requests(gateway_settings: GatewaySettings) -> None:
    async with asgi_client(gateway_settings) as first, asgi_client(gateway_settings) as second:
        await first.get("/no/such/path")
        assert requests_counted((await second.get("/metrics")).text) == {}
