"""The projection runner: keeps every projection up to date with the feed, exactly once.

Each step of a projection is one transaction: lock its checkpoint row, read the feed after it,
apply the events, move the checkpoint on. A crash before the commit leaves both as they were;
two runners (two workers) never apply the same events, because the second finds the row
locked and leaves the step to the first (``SKIP LOCKED``).

A handler that fails on an event stops its projection there: the events before it are applied,
the event's position and the error are stored in the checkpoint row (``projections status``
shows them), and the other projections go on. A lost connection is not a failure: the runner
waits and tries again. ``projections rebuild NAME`` starts a failed projection afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from outages.backoff import Backoff
from projections import feed
from projections.base import Projection, live
from projections.checkpoints import ensure, fail, lock, move_on

BATCH = 1_000
"""Feed events applied per step and projection."""
IDLE_WAIT = 1.0
"""Seconds to wait for an announcement of new events before looking anyway."""
HELD_BACK_WAIT = 0.05
"""Seconds before looking again when committed events wait for an older transaction."""

log = logging.getLogger("billing.projections")


class ProjectionRunner:
    """Runs ``projections`` against the database behind ``pool`` until stopped."""

    def __init__(self, pool: AsyncConnectionPool[Any], projections: Sequence[Projection],
                 *, batch: int = BATCH) -> None:
        self._pool = pool
        self._projections = projections
        self._batch = batch
        self._ensured = False

    async def run(self, stop: asyncio.Event, connect: Callable[[], Awaitable[AsyncConnection[Any]]]) -> None:
        """Apply the feed until ``stop`` is set. ``connect`` opens the connection that listens
        for new events (one of its own, opened again after an outage)."""
        listener: AsyncConnection[Any] | None = None
        failures = 0
        try:
            while not stop.is_set():
                try:
                    if listener is None or listener.closed:
                        listener = await connect()
                        await feed.listen(listener)
                    moved, behind = await self.catch_up()
                    if not moved:
                        await feed.wait(listener, HELD_BACK_WAIT if behind else IDLE_WAIT)
                    failures = 0
                except psycopg.OperationalError as error:  # an outage, not a handler's failure
                    failures += 1
                    delay = Backoff(cap=30).delay(failures)
                    log.warning("projections paused: %s (retry in %.1f s)", error, delay)
                    if listener is not None:
                        await listener.close()
                    await _sleep(stop, delay)
        finally:
            if listener is not None:
                await listener.close()

    async def catch_up(self) -> tuple[int, bool]:
        """One step of every projection: the events applied, and whether committed events
        wait behind an older transaction still in flight."""
        if not self._ensured:
            async with self._pool.connection() as conn:
                await ensure(conn, [projection.name for projection in self._projections])
            self._ensured = True
        moved, behind = 0, False
        for projection in self._projections:
            applied, waiting = await self.step(projection)
            moved, behind = moved + applied, behind or waiting
        return moved, behind

    async def step(self, projection: Projection) -> tuple[int, bool]:
        """Apply the next events to ``projection``, in one transaction with its checkpoint."""
        async with self._pool.connection() as conn, conn.transaction():
            checkpoint = await lock(conn, projection.name)
            if checkpoint is None or checkpoint.failed:
                return 0, False  # another runner has it, or it is stopped at a failure
            events = await feed.read(conn, checkpoint.at, self._batch)
            if not events:
                return 0, await feed.held_back(conn, checkpoint.at)
            applied = await _apply(conn, projection, events)
            if applied:
                await move_on(conn, projection.name, events[:applied])
            return applied, False


async def _apply(conn: AsyncConnection[Any], projection: Projection,
                 events: Sequence[feed.FeedEvent]) -> int:
    """Apply ``events`` (in a savepoint); on a handler's failure, apply them one by one to find
    the event that fails, keep those before it, and record the failure. Returns how many
    events were applied."""
    try:
        async with conn.transaction():
            await projection.apply(conn, events, live(projection))
        return len(events)
    except psycopg.OperationalError:
        raise
    except Exception:  # noqa: BLE001 - any handler failure: find the event, record it below
        pass
    for index, event in enumerate(events):
        try:
            async with conn.transaction():
                await projection.apply(conn, [event], live(projection))
        except psycopg.OperationalError:
            raise
        except Exception as error:  # noqa: BLE001 - the projection stops here, the others go on
            log.error("projection %s stopped at event %s of account %s (version %s): %s",
                      projection.name, event.at.position, event.account_id, event.version, error)
            await fail(conn, projection.name, event, error)
            return index
    return len(events)  # each applies alone: the batch failed for a reason that passed


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
