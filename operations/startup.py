"""What the worker does before it serves: migrate, reach Postgres and Temporal (each waited for
with capped backoff under one deadline), register the search attributes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from psycopg_pool import AsyncConnectionPool
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from activities.db import check_worker_database, migrate, open_pool
from config import ConfigError, Settings, connect_temporal
from operations.search_attributes import SearchAttributesMissing, ensure_search_attributes
from outages.backoff import Deadline
from outages.dependencies import (
    postgres_reason,
    postgres_where,
    temporal_reason,
    wait_for,
)

log = logging.getLogger("billing.worker")


T = TypeVar("T")
TEMPORAL_ATTEMPT_TIMEOUT = 15.0  # seconds for one connect-and-describe; a dropped packet is no answer
POOL_OPEN_TIMEOUT = 10.0


class Startup:
    """The steps before serving, each waited for with capped backoff under one deadline,
    ``BILLING_STARTUP_TIMEOUT`` from now."""

    def __init__(self, settings: Settings, stop: asyncio.Event) -> None:
        self.settings, self.stop = settings, stop
        self.deadline = Deadline.after(settings.startup_timeout, time.monotonic())

    async def migrate(self) -> list[str]:
        """Apply pending migrations as the owner. A connection lost midway rolls the whole
        transaction back, and the next attempt starts over."""
        url = self.settings.require_migration_url()
        applied = await self._postgres(url, lambda: migrate(url))
        log.info("migrations applied: %s", ", ".join(applied) or "none pending")
        return applied

    async def database(self) -> AsyncConnectionPool:
        """Migrate if given the owner's URL, check the database as the worker, open the pool."""
        url, role = self.settings.require_database_url(), self.settings.database_role
        if self.settings.migration_url:
            await self.migrate()
        await self._postgres(url, lambda: check_worker_database(url, role=role))
        return await self._postgres(url, lambda: _opened_pool(url, role))

    async def temporal(self) -> Client:
        """Reach Temporal, then register the account workflow's search attributes if missing."""
        settings = self.settings

        async def reach() -> Client:
            async with asyncio.timeout(TEMPORAL_ATTEMPT_TIMEOUT):
                client = await connect_temporal(settings)
                # A dev server accepts connections a moment before it knows its namespace.
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=settings.temporal_namespace))
                return client

        client = await wait_for("Temporal", f"{settings.temporal_address} (namespace "
                                f"{settings.temporal_namespace})", reach, reason=temporal_reason,
                                deadline=self.deadline, stop=self.stop)
        try:
            if added := await ensure_search_attributes(client, settings.temporal_namespace):
                log.info("search attributes registered: %s", ", ".join(added))
        except SearchAttributesMissing as error:
            raise ConfigError(str(error)) from error
        return client

    async def _postgres(self, url: str, attempt: Callable[[], Awaitable[T]]) -> T:
        return await wait_for("Postgres", postgres_where(url), attempt, reason=postgres_reason,
                              deadline=self.deadline, stop=self.stop)


async def _opened_pool(url: str, role: str | None) -> AsyncConnectionPool:
    pool = open_pool(url, role=role)
    try:
        await pool.open(wait=True, timeout=POOL_OPEN_TIMEOUT)
    except BaseException:
        await pool.close()
        raise
    return pool
