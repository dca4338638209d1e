"""Each projection's checkpoint row: how far it has applied the feed, and where it failed.

The row moves on in the transaction of the projection's writes, so a projection's tables and
its checkpoint always agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from projections.feed import START, FeedEvent, FeedPosition

PAUSE_RUNNERS = 7_233_000_002
"""Advisory lock: a runner's step holds it shared; a replay's swap takes it alone, to pause
every runner without taking a transaction id (which would hold the feed back)."""

_COLUMNS = ("name, transaction_id::text, position, events_applied, last_recorded_at, updated_at,"
            " failed_position, failure, failed_at")


@dataclass(frozen=True)
class Checkpoint:
    name: str
    at: FeedPosition
    events_applied: int
    last_recorded_at: datetime | None
    updated_at: datetime
    failed_position: int | None
    failure: str | None
    failed_at: datetime | None

    @property
    def failed(self) -> bool:
        return self.failure is not None

    @classmethod
    def of(cls, row: Sequence[Any]) -> Checkpoint:
        name, xid, position, applied, last_at, updated, failed_position, failure, failed_at = row
        return cls(name, FeedPosition(int(xid), position), applied, last_at, updated,
                   failed_position, failure, failed_at)


async def lock(conn: AsyncConnection[Any], names: Sequence[str]) -> dict[str, Checkpoint]:
    """The checkpoints of ``names``, locked for this transaction: those another transaction
    holds (another runner is at work) are left out, and all are while a replay swaps tables."""
    cursor = await conn.execute("SELECT pg_try_advisory_xact_lock_shared(%s)", (PAUSE_RUNNERS,))
    paused = await cursor.fetchone()
    if not (paused and paused[0]):
        return {}
    cursor = await conn.execute(f"SELECT {_COLUMNS} FROM projection_checkpoints"
                                " WHERE name = ANY(%s) FOR UPDATE SKIP LOCKED", (list(names),))
    return {checkpoint.name: checkpoint
            for checkpoint in map(Checkpoint.of, await cursor.fetchall())}


async def hold(conn: AsyncConnection[Any], name: str) -> Checkpoint | None:
    """The projection's checkpoint, locked for this transaction, waiting for a runner's step to
    end: its runners pause until the transaction does. None if it has no checkpoint yet."""
    cursor = await conn.execute(f"SELECT {_COLUMNS} FROM projection_checkpoints WHERE name = %s"
                                " FOR UPDATE", (name,))
    row = await cursor.fetchone()
    return Checkpoint.of(row) if row else None


async def ensure(conn: AsyncConnection[Any], names: Sequence[str]) -> None:
    """A checkpoint row, at the start of the feed, for each projection that has none."""
    await conn.execute("INSERT INTO projection_checkpoints (name) SELECT unnest(%s::text[])"
                       " ON CONFLICT (name) DO NOTHING", (list(names),))


async def move_on(conn: AsyncConnection[Any], name: str, applied: Sequence[FeedEvent]) -> None:
    last = applied[-1]
    await conn.execute(
        "UPDATE projection_checkpoints SET transaction_id = %s::text::xid8, position = %s,"
        " events_applied = events_applied + %s, last_recorded_at = %s, updated_at = now()"
        " WHERE name = %s",
        (str(last.at.transaction_id), last.at.position, len(applied), last.stored.recorded_at, name))


async def fail(conn: AsyncConnection[Any], name: str, event: FeedEvent, error: BaseException) -> None:
    await conn.execute(
        "UPDATE projection_checkpoints SET failed_position = %s, failure = %s, failed_at = now(),"
        " updated_at = now() WHERE name = %s",
        (event.at.position, f"account {event.account_id} version {event.version}: "
                            f"{type(error).__name__}: {error}"[:2000], name))


async def reset(conn: AsyncConnection[Any], name: str, at: FeedPosition = START,
                events_applied: int = 0) -> None:
    """Set the checkpoint (a rebuilt projection's), clearing any failure."""
    await conn.execute(
        "INSERT INTO projection_checkpoints (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (name,))
    await conn.execute(
        "UPDATE projection_checkpoints SET transaction_id = %s::text::xid8, position = %s,"
        " events_applied = %s, updated_at = now(), failed_position = NULL, failure = NULL,"
        " failed_at = NULL WHERE name = %s",
        (str(at.transaction_id), at.position, events_applied, name))


async def all_checkpoints(conn: AsyncConnection[Any]) -> list[Checkpoint]:
    cursor = await conn.execute(f"SELECT {_COLUMNS} FROM projection_checkpoints ORDER BY name")
    return [Checkpoint.of(row) for row in await cursor.fetchall()]
