"""503 with Retry-After when Temporal or Postgres cannot be reached, or the accounts do not
answer; the command's key comes back, so the client can repeat it safely."""

from __future__ import annotations

import socket
import uuid

from gateway.settings import GatewaySettings
from tests.gateway.conftest import asgi_client
from tests.gateway.test_routes import problem


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_temporal_unreachable_is_503_with_retry_after(gateway_settings: GatewaySettings) -> None:
    settings = gateway_settings.model_copy(update={"temporal_address": f"127.0.0.1:{closed_port()}",
                                                   "retry_after": 7})
    async with asgi_client(settings) as api:
        answers = [await api.post("/accounts", json={"account_id": "a", "currency": "USD"}),
                   await api.get("/accounts/a"),
                   await api.post("/accounts/a/funds", json={"amount": 5}, headers={"Idempotency-Key": "k"}),
                   await api.post("/accounts/a/charges", json={"amount": 5}),
                   await api.post("/accounts/a/close", json={})]
        for response in answers:
            assert "cannot reach Temporal" in problem(response, 503, "temporal-unavailable")["detail"]
            assert response.headers["retry-after"] == "7"
        assert answers[2].headers["idempotency-key"] == "k"
        assert answers[3].headers["idempotency-key"]


async def test_no_worker_is_503_once_the_timeout_passes(gateway_settings: GatewaySettings) -> None:
    """Temporal answers, but no worker polls the task queue: the call runs out of time."""
    settings = gateway_settings.model_copy(update={"http_timeout": 1.0})
    async with asgi_client(settings) as api:
        account_id = f"lonely-{uuid.uuid4().hex[:8]}"  # the session's dev server keeps it
        response = await api.post("/accounts", json={"account_id": account_id, "currency": "USD"})
        assert "did not answer within 1s" in problem(response, 503, "temporal-unavailable")["detail"]
        assert response.headers["retry-after"] == str(settings.retry_after)


async def test_postgres_unreachable_is_503_with_retry_after(gateway_settings: GatewaySettings) -> None:
    url = f"postgresql://billing_worker@127.0.0.1:{closed_port()}/billing"
    async with asgi_client(gateway_settings.model_copy(update={"database_url": url})) as api:
        response = await api.get("/accounts/anyone/events")
        assert "cannot read the event log" in problem(response, 503, "database-unavailable")["detail"]
        assert response.headers["retry-after"] == str(gateway_settings.retry_after)
