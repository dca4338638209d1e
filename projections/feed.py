"""The log in commit-safe order: a gap-safe global feed of ``account_events``.

Positions come from an identity sequence, taken before commit, so concurrent writers make them
visible out of order: a reader that remembers the highest position it saw and asks for higher
ones skips an event whose position was taken earlier but committed later. The feed orders
events by (writing transaction, position) instead, and delivers only events written by
transactions older than the oldest one still in flight (``pg_snapshot_xmin``): every
transaction that could still add an event sorts after everything delivered. A checkpoint is the
last (transaction, position) delivered. (docs/decisions.md, "A gap-safe feed".)

New events wake followers through ``LISTEN account_events`` (a trigger notifies once per
appending transaction), so they neither poll hot nor wait long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from activities.rows import STORED_EVENT, StoredEvent
from domain.events import Event

CHANNEL = "account_events"


@dataclass(frozen=True, order=True)
class FeedPosition:
    """A place in the feed: the writing transaction's id, then the event's position."""

    transaction_id: int = 0
    position: int = 0


START = FeedPosition()


class FeedEvent:
    """One event of the feed, where it sits, and the row it was stored as."""

    __slots__ = ("_event", "account_id", "at", "event_id", "stored")

    def __init__(self, at: FeedPosition, event_id: UUID, account_id: str, stored: StoredEvent) -> None:
        self.at, self.event_id, self.account_id, self.stored = at, event_id, account_id, stored
        self._event: Event | None = None

    @property
    def version(self) -> int:
        return self.stored.version

    @property
    def event(self) -> Event:
        """The domain event, in today's shape (parsed once, whatever reads it)."""
        if self._event is None:
            self._event = self.stored.event()
        return self._event

    def __repr__(self) -> str:
        return f"FeedEvent({self.at}, {self.account_id} v{self.version} {self.stored.event_type})"


_READ = f"""
SELECT e.transaction_id::text AS xid, e.position, e.event_id, e.account_id, {STORED_EVENT}
  FROM account_events e
 WHERE (e.transaction_id, e.position) > (%(transaction_id)s::text::xid8, %(position)s)
   AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY e.transaction_id, e.position  -- the xid8 column, not its text (1000 < 999 as text)
 LIMIT %(limit)s
"""


async def read(conn: AsyncConnection[Any], after: FeedPosition, limit: int = 1_000) -> list[FeedEvent]:
    """The next events after ``after`` that no transaction in flight can still precede."""
    cursor = await conn.execute(_READ, {"transaction_id": str(after.transaction_id),
                                        "position": after.position, "limit": limit})
    return [FeedEvent(FeedPosition(int(xid), position), event_id, account_id, StoredEvent(*rest))
            for xid, position, event_id, account_id, *rest in await cursor.fetchall()]


async def held_back(conn: AsyncConnection[Any], after: FeedPosition) -> bool:
    """Whether committed events after ``after`` wait for an older transaction to end."""
    cursor = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM account_events"
        " WHERE (transaction_id, position) > (%s::text::xid8, %s))",
        (str(after.transaction_id), after.position))
    row = await cursor.fetchone()
    return bool(row and row[0])


@dataclass(frozen=True)
class Lag:
    """How far behind the log a checkpoint is: events not yet delivered, and the age in
    seconds of the oldest of them (0 when caught up)."""

    events: int
    seconds: float


async def lag(conn: AsyncConnection[Any], after: FeedPosition) -> Lag:
    cursor = await conn.execute(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(recorded_at)), 0)::float8"
        " FROM account_events WHERE (transaction_id, position) > (%s::text::xid8, %s)",
        (str(after.transaction_id), after.position))
    row = await cursor.fetchone()
    assert row is not None
    return Lag(row[0], max(0.0, row[1]))


async def listen(conn: AsyncConnection[Any]) -> None:
    """Subscribe ``conn`` (autocommit, used for nothing else) to new events."""
    await conn.execute(f"LISTEN {CHANNEL}")


async def wait(conn: AsyncConnection[Any], timeout: float) -> bool:
    """Wait on a listening connection until new events are announced (True) or ``timeout``
    seconds pass (False)."""
    async for _ in conn.notifies(timeout=timeout, stop_after=1):
        return True
    return False


def last(events: Sequence[FeedEvent]) -> FeedPosition:
    return events[-1].at
