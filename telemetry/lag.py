"""The projections' lag, sampled by the worker every few seconds into two gauges
(``billing_projection_lag_events`` and ``_seconds``, per projection).

Read from the checkpoints, as ``billing projections status`` reads them, so it shows a
projection that another worker's runner keeps, or one stopped at a failure, just the same.
An outage skips samples (the gauges keep their last values); it never stops the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from projections.reads import projection_status
from telemetry import metrics

SAMPLE_EVERY = 5.0
"""Seconds between samples."""

log = logging.getLogger("billing.telemetry")


async def sample(pool: AsyncConnectionPool[Any]) -> int:
    """Set the gauges of every projection that has a checkpoint; how many it set."""
    async with pool.connection() as conn:
        statuses = await projection_status(conn)
    for status in statuses:
        metrics.projection_lag(status.name, status.lag_events, status.lag_seconds)
    return len(statuses)


async def keep_sampling(pool: AsyncConnectionPool[Any], stop: asyncio.Event,
                        every: float = SAMPLE_EVERY) -> None:
    """Sample until ``stop`` is set."""
    while not stop.is_set():
        try:
            await sample(pool)
        except psycopg.OperationalError as error:  # the pool's timeout too
            log.debug("projection lag not sampled: %s", error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
