"""A replay's progress, committed with the rows it covers (``replay_progress``), so that an
interrupted replay resumes exactly where it stopped, with the same horizon."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from operations.replay import shadow
from projections.base import Projection
from projections.feed import FeedEvent, FeedPosition


@dataclass
class State:
    key: str
    horizon: int
    scanned_account: str
    scanned_version: int
    feed_at: FeedPosition | None  # None while scanning
    events_done: int
    events_total: int


def key(projections: Sequence[Projection]) -> str:
    return ",".join(sorted(projection.name for projection in projections))


async def start(conn: AsyncConnection[Any], projections: Sequence[Projection]) -> State:
    """The progress of an interrupted replay of ``projections``, or a new one with fresh
    shadows, its horizon the oldest transaction in flight now."""
    cursor = await conn.execute(
        "SELECT horizon::text, scanned_account, scanned_version, feed_transaction_id::text,"
        " feed_position, events_done, events_total FROM replay_progress WHERE projections = %s",
        (key(projections),))
    row = await cursor.fetchone()
    if row is not None and await _shadows_exist(conn, projections):
        horizon, account, version, feed_xid, feed_position, done, total = row
        at = FeedPosition(int(feed_xid), feed_position) if feed_xid is not None else None
        return State(key(projections), int(horizon), account, version, at, done, total)
    # Fresh statistics, so that the scan walks the (account, version) index: after a bulk load,
    # the planner would otherwise read the whole log and sort it for every chunk.
    await conn.execute("ANALYZE account_events")
    async with conn.transaction():
        # First, before this transaction writes anything and takes an id of its own.
        cursor = await conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        horizon_row = await cursor.fetchone()
        assert horizon_row is not None
        horizon = int(horizon_row[0])
        cursor = await conn.execute("SELECT count(*) FROM account_events")
        total_row = await cursor.fetchone()
        total = total_row[0] if total_row else 0
        await shadow.create(conn, projections)
        await conn.execute("DELETE FROM replay_progress WHERE projections = %s", (key(projections),))
        await conn.execute("INSERT INTO replay_progress (projections, horizon, events_total)"
                           " VALUES (%s, %s::text::xid8, %s)", (key(projections), str(horizon), total))
    return State(key(projections), horizon, "", 0, None, 0, total)


async def _shadows_exist(conn: AsyncConnection[Any], projections: Sequence[Projection]) -> bool:
    cursor = await conn.execute("SELECT bool_and(to_regclass(name) IS NOT NULL)"
                                " FROM unnest(%s::text[]) AS name",
                                (list(shadow.shadows(projections).values()),))
    row = await cursor.fetchone()
    return bool(row and row[0])


async def scanned(conn: AsyncConnection[Any], state: State, events: Sequence[FeedEvent]) -> None:
    """In the chunk's transaction: the scan got as far as the last of ``events``."""
    last = events[-1]
    state.scanned_account, state.scanned_version = last.account_id, last.version
    state.events_done += len(events)
    await conn.execute(
        "UPDATE replay_progress SET scanned_account = %s, scanned_version = %s, events_done = %s,"
        " updated_at = now() WHERE projections = %s",
        (state.scanned_account, state.scanned_version, state.events_done, state.key))


async def scan_done(conn: AsyncConnection[Any], state: State) -> None:
    """The scan is over: the catch-up follows the feed from the horizon."""
    state.feed_at = FeedPosition(state.horizon, 0)
    await _save_feed(conn, state)


async def followed(conn: AsyncConnection[Any], state: State, events: Sequence[FeedEvent]) -> None:
    """In the chunk's transaction: the catch-up got as far as the last of ``events``."""
    state.feed_at = events[-1].at
    state.events_done += len(events)
    state.events_total = max(state.events_total, state.events_done)
    await _save_feed(conn, state)


async def _save_feed(conn: AsyncConnection[Any], state: State) -> None:
    assert state.feed_at is not None
    await conn.execute(
        "UPDATE replay_progress SET feed_transaction_id = %s::text::xid8, feed_position = %s,"
        " events_done = %s, events_total = %s, updated_at = now() WHERE projections = %s",
        (str(state.feed_at.transaction_id), state.feed_at.position, state.events_done,
         state.events_total, state.key))


async def finish(conn: AsyncConnection[Any], projections: Sequence[Projection]) -> None:
    await conn.execute("DELETE FROM replay_progress WHERE projections = %s", (key(projections),))


async def abandon(conn: AsyncConnection[Any], projections: Sequence[Projection]) -> None:
    """Drop the shadows and forget the progress: the live tables were never touched."""
    async with conn.transaction():
        await shadow.drop(conn, projections)
        await finish(conn, projections)
