"""A full replay: projections rebuilt from the log into shadow tables, then swapped in.

1. **Scan.** Every event of a transaction older than the *horizon* (the oldest transaction in
   flight when the replay began) is read in (account, version) order, a chunk at a time, with
   keyset pagination: no transaction stays open, memory stays flat. Each chunk is applied to
   the shadows with the projections' own ``apply``, and the scan's position is committed with
   it (``replay_progress``): an interrupted replay resumes exactly where it stopped.
2. **Catch up.** The events committed since the horizon are followed through the gap-safe feed,
   from (horizon, 0), into the shadows, with the same progress row.
3. **Swap.** In one transaction: pause the runners and every writer of the live tables, apply
   the last events, rename the shadows in, and set the projections' checkpoints where the
   shadows end. Readers never see a half-built table; the live system keeps writing until the
   swap, and waits for it only a moment.

A corrupt log (a gap, a repeated command id, an event that does not parse) stops the replay
with ``CorruptLog`` naming the account and version; the shadows are dropped, nothing swapped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic_core
from psycopg import AsyncConnection
from psycopg.types.json import set_json_loads

from operations.replay import progress, shadow
from operations.replay.scan import CorruptLog, apply_all, repeated_command, scan
from projections import feed
from projections.base import Projection
from projections.checkpoints import reset

CHUNK = 10_000
SWAP_PATIENCE = 30.0
"""Seconds the swap waits, holding its locks, for an unrelated old transaction to end."""


@dataclass(frozen=True)
class Progress:
    phase: str  # scanning, catching up, swapping, done
    events_done: int
    events_total: int
    account_id: str = ""


class SwapTimeout(RuntimeError):
    """An old transaction kept committed events undeliverable for too long; try again."""


OnProgress = Callable[[Progress], Any]


async def rebuild(conn: AsyncConnection[Any], projections: Sequence[Projection], *,
                  chunk: int = CHUNK, on_progress: OnProgress | None = None) -> Progress:
    """Rebuild ``projections`` from the log and swap them in; resumes an interrupted rebuild.
    ``conn`` is an autocommit connection of a role that owns the tables."""
    report = on_progress or (lambda _: None)
    set_json_loads(pydantic_core.from_json, conn)  # payloads: several times faster than json.loads
    state = await progress.start(conn, projections)
    try:
        if state.feed_at is None:
            await _scan(conn, projections, state, chunk, report)
        await _catch_up(conn, projections, state, chunk, report)
        await _swap(conn, projections, state, chunk)
    except CorruptLog:
        await progress.abandon(conn, projections)
        raise
    done = Progress("done", state.events_done, state.events_total)
    report(done)
    return done


async def _scan(conn: AsyncConnection[Any], projections: Sequence[Projection],
                state: progress.State, chunk: int, report: OnProgress) -> None:
    if (repeated := await repeated_command(conn)) is not None:
        raise repeated
    tables = shadow.shadows(projections)
    while events := await scan(conn, state, chunk):
        async with conn.transaction():
            await apply_all(conn, projections, events, tables)
            await progress.scanned(conn, state, events)
        report(Progress("scanning", state.events_done, state.events_total, state.scanned_account))
    await progress.scan_done(conn, state)


async def _catch_up(conn: AsyncConnection[Any], projections: Sequence[Projection],
                    state: progress.State, chunk: int, report: OnProgress) -> None:
    tables = shadow.shadows(projections)
    assert state.feed_at is not None
    while events := await feed.read(conn, state.feed_at, chunk):
        async with conn.transaction():
            await apply_all(conn, projections, events, tables)
            await progress.followed(conn, state, events)
        report(Progress("catching up", state.events_done, state.events_total))


async def _swap(conn: AsyncConnection[Any], projections: Sequence[Projection],
                state: progress.State, chunk: int) -> None:
    tables = shadow.shadows(projections)
    assert state.feed_at is not None
    async with conn.transaction():
        await shadow.lock_live(conn, projections)
        deadline = time.monotonic() + SWAP_PATIENCE
        while True:
            events = await feed.read(conn, state.feed_at, chunk)
            if events:
                await apply_all(conn, projections, events, tables)
                await progress.followed(conn, state, events)
            elif not await feed.held_back(conn, state.feed_at):
                break
            elif time.monotonic() > deadline:
                raise SwapTimeout("committed events wait for an older transaction to end; "
                                  "replay again once it has (see pg_stat_activity)")
            else:
                await asyncio.sleep(0.05)
        await shadow.swap(conn, projections)
        for projection in projections:
            if projection.name != "accounts":  # the append keeps that one, not a runner
                await reset(conn, projection.name, state.feed_at, state.events_done)
        await progress.finish(conn, projections)
