"""Reading the log for a replay, and refusing a corrupt one before anything is swapped.

``scan`` reads the events older than the replay's horizon in (account, version) order, one
chunk at a time after the last one read (keyset pagination over the unique index, so no
transaction is held open and memory stays flat whatever the log's size).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import AsyncConnection
from pydantic import ValidationError

from activities.rows import STORED_EVENT, StoredEvent
from domain.upcasting import UnknownSchemaVersion
from operations.replay.progress import State
from projections.accounts import GapInLog
from projections.base import Projection
from projections.feed import FeedEvent, FeedPosition

_SCAN = f"""
SELECT transaction_id::text AS xid, position, event_id, account_id, {STORED_EVENT}
  FROM account_events
 WHERE (account_id, version) > (%(account)s, %(version)s)
   AND transaction_id < %(horizon)s::text::xid8
 ORDER BY account_id, version
 LIMIT %(limit)s
"""


class CorruptLog(ValueError):
    """The log cannot be replayed: ``account_id`` at ``version`` is wrong, as ``reason`` says."""

    def __init__(self, account_id: str, version: int, reason: str) -> None:
        super().__init__(f"account {account_id}, version {version}: {reason}")
        self.account_id, self.version, self.reason = account_id, version, reason


async def scan(conn: AsyncConnection[Any], state: State, limit: int) -> list[FeedEvent]:
    """The next ``limit`` events of the scan, after ``state``'s position."""
    # Never prepared: a generic plan reads the whole log and sorts it, for every chunk.
    cursor = await conn.execute(_SCAN, {"account": state.scanned_account,
                                        "version": state.scanned_version,
                                        "horizon": str(state.horizon), "limit": limit}, prepare=False)
    return [FeedEvent(FeedPosition(int(xid), position), event_id, account_id, StoredEvent(*rest))
            for xid, position, event_id, account_id, *rest in await cursor.fetchall()]


async def apply_all(conn: AsyncConnection[Any], projections: Sequence[Projection],
                    events: Sequence[FeedEvent], tables: Mapping[str, str]) -> None:
    """Apply ``events`` to every projection; ``CorruptLog`` for an event that does not parse or
    does not follow on from its account's previous one."""
    for feed_event in events:
        try:
            feed_event.event  # noqa: B018 - parse now, to name the event that does not
        except (ValidationError, UnknownSchemaVersion) as error:
            raise CorruptLog(feed_event.account_id, feed_event.version,
                             f"{feed_event.stored.event_type} does not parse: {error}") from None
    try:
        for projection in projections:
            await projection.apply(conn, events, tables)
    except GapInLog as gap:
        raise CorruptLog(gap.account_id, gap.version, str(gap)) from None


async def repeated_command(conn: AsyncConnection[Any], account_id: str | None = None) -> CorruptLog | None:
    """A command id recorded twice for one account (of ``account_id`` only, if given; the log's
    unique key forbids it, unless it was dropped): the log cannot be trusted, so nothing is
    replayed."""
    cursor = await conn.execute(
        "SELECT account_id, command_id, min(version) FROM account_events WHERE command_id IS NOT NULL"
        " AND (%(account)s::text IS NULL OR account_id = %(account)s)"
        " GROUP BY account_id, command_id HAVING count(*) > 1 ORDER BY 1, 3 LIMIT 1",
        {"account": account_id})
    row = await cursor.fetchone()
    if row is None:
        return None
    account_id, command_id, version = row
    return CorruptLog(account_id, version, f"command id {command_id!r} is recorded more than once")
