"""``snapshots rebuild``: every account's log folded afresh and stored as its snapshot, in
today's state schema; snapshots of other schemas are dropped. Memory stays flat: the log is
read in (account, version) order a chunk at a time, one account's state in hand."""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from typing import Any

from psycopg import AsyncConnection

from activities import snapshots
from activities.rows import STORED_EVENT, StoredEvent, in_order
from domain.account import evolve
from domain.state import STATE_SCHEMA_VERSION, AccountState

CHUNK = 10_000


@dataclass(frozen=True)
class SnapshotsRebuilt:
    accounts: int
    events: int
    dropped: int


async def rebuild_all(conn: AsyncConnection[Any], chunk: int = CHUNK) -> SnapshotsRebuilt:
    cursor = await conn.execute("DELETE FROM account_snapshots WHERE state_schema_version <> %s",
                                (STATE_SCHEMA_VERSION,))
    dropped = cursor.rowcount
    state: AccountState | None = None
    accounts = events = 0
    after = ("", 0)
    while rows := await _chunk(conn, after, chunk):
        for account_id, *columns in rows:
            row = StoredEvent(*columns)
            if state is None or state.account_id != account_id:
                if state is not None:
                    await snapshots.write_fresh(conn, state)
                    accounts += 1
                state = AccountState(account_id)
            state = reduce(evolve, in_order(account_id, [row], after=state.version), state)
        events += len(rows)
        after = (rows[-1][0], rows[-1][1])
    if state is not None:
        await snapshots.write_fresh(conn, state)
        accounts += 1
    return SnapshotsRebuilt(accounts, events, dropped)


async def _chunk(conn: AsyncConnection[Any], after: tuple[str, int], limit: int) -> list[Any]:
    cursor = await conn.execute(
        f"SELECT account_id, {STORED_EVENT} FROM account_events"
        " WHERE (account_id, version) > (%s, %s) ORDER BY account_id, version LIMIT %s",
        (*after, limit))
    return await cursor.fetchall()
