"""Fixtures for the HTTP API: the app over the test's own Postgres, dev server and worker.

``api`` is an httpx client that calls the ASGI app in process (no socket); the app reads the
log as the worker's login role, as the service does. ``gateway_settings`` is what
``python -m gateway`` would read from the environment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client import AccountClient
from gateway import create_app
from gateway.settings import GatewaySettings

TIMEOUT = 10.0  # seconds per request, as BILLING_HTTP_TIMEOUT


@pytest.fixture
def gateway_settings(worker_db_url: str, temporal_env: WorkflowEnvironment,
                     task_queue: str) -> GatewaySettings:
    address = temporal_env.client.service_client.config.target_host
    return GatewaySettings(database_url=worker_db_url, temporal_address=address, task_queue=task_queue,
                           http_timeout=TIMEOUT)


def asgi_client(settings: GatewaySettings, accounts: AccountClient | None = None) -> httpx.AsyncClient:
    """An httpx client that calls the app in process."""
    app = create_app(settings, accounts=accounts)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1",
                             timeout=2 * TIMEOUT)


@pytest.fixture
async def api(gateway_settings: GatewaySettings, client: Client, task_queue: str,
              worker: Worker) -> AsyncIterator[httpx.AsyncClient]:
    """The app, with a worker running, over the test's Temporal client."""
    accounts = AccountClient(client, task_queue, rpc_timeout=TIMEOUT)
    async with asgi_client(gateway_settings, accounts) as http:
        yield http
