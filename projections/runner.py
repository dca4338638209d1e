"""The projection runner: keeps every projection up to date with the feed, exactly once.

A step is one transaction: lock the projections' checkpoint rows, read the feed after them
(once for all that stand at the same place), apply the events, move the checkpoints on. A crash
before the commit leaves all as they were; two runners (two workers) never apply the same
events, because the second finds the rows locked and leaves them to the first (``SKIP
LOCKED``). Under a steady load the runner steps at most every ``PACE`` seconds, so that the
feed is applied in chunks, not one transaction per append, beside the worker's workflows.

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
from typing import Any, NamedTuple

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from outages.backoff import Backoff
from projections import feed
from projections.base import Projection, live
from projections.checkpoints import ensure, fail, lock, move_on
from projections.feed import FeedPosition

BATCH = 1_000
"""Feed events applied per step and projection."""
IDLE_WAIT = 1.0
"""Seconds to wait for an announcement of new events before looking anyway."""
PACE = 0.1
"""Seconds between steps that found events, unless the last one found a full batch (a backlog)."""
HELD_BACK_WAIT = 0.05
"""Seconds before looking again when committed events wait for an older transaction."""

log = logging.getLogger("billing.projections")


class Step(NamedTuple):
    """What one step did."""

    applied: int
    """Events applied, summed over the projections."""
    held_back: bool
    """Committed events wait behind an older transaction still in flight."""
    backlog: bool
    """A read found a full batch: more events are waiting."""


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
                    step = await self.catch_up()
                    if not step.applied:
                        await feed.wait(listener, HELD_BACK_WAIT if step.held_back else IDLE_WAIT)
                    elif not step.backlog:
                        await _sleep(stop, PACE)
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

    async def catch_up(self) -> Step:
        """One step of every projection."""
        if not self._ensured:
            async with self._pool.connection() as conn:
                await ensure(conn, [projection.name for projection in self._projections])
            self._ensured = True
        return await self.step(*self._projections)

    async def step(self, *projections: Projection) -> Step:
        """Apply the next events to ``projections``, in one transaction with their checkpoints.
        Those at the same place in the feed (all of them, once caught up) share one read."""
        async with self._pool.connection() as conn, conn.transaction():
            checkpoints = await lock(conn, [projection.name for projection in projections])
            at_place: dict[FeedPosition, list[Projection]] = {}
            for projection in projections:
                checkpoint = checkpoints.get(projection.name)
                if checkpoint is not None and not checkpoint.failed:  # else: another runner
                    at_place.setdefault(checkpoint.at, []).append(projection)  # has it, or stopped
            moved, behind, backlog = 0, False, False
            for place, group in at_place.items():
                events = await feed.read(conn, place, self._batch)
                if not events:
                    behind = behind or await feed.held_back(conn, place)
                backlog = backlog or len(events) == self._batch
                for projection in group if events else ():
                    applied = await _apply(conn, projection, events)
                    if applied:
                        await move_on(conn, projection.name, events[:applied])
                    moved += applied
            return Step(moved, behind, backlog)


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
