"""The account statement: every money movement with the balance right after it.

A movement is any event that changes the balance, as the domain's own ``evolve`` says, so a
new kind of movement needs no change here. Each row is linked to the event by its version.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from psycopg import AsyncConnection, sql

from activities.rows import StoredEvent
from domain.account import balance_change
from domain.events import Event
from projections.base import Tables, table
from projections.feed import FeedEvent

NAME = "statement"
TABLE = "account_statement"


class Statement:
    name: str = NAME
    tables: tuple[str, ...] = (TABLE,)

    async def apply(self, conn: AsyncConnection[Any], events: Sequence[FeedEvent],
                    tables: Tables) -> None:
        balances = await _last_balances(conn, tables, {e.account_id for e in events})
        rows = []
        for feed_event in events:
            account_id = feed_event.account_id
            row = movement(account_id, feed_event.stored, feed_event.event, balances.get(account_id, 0))
            if row is not None:
                balances[account_id] = row.balance_after
                rows.append(row)
        if rows:  # COPY: a replay writes a row per movement, and COPY is several times faster
            async with conn.cursor().copy(sql.SQL(
                    "COPY {} (account_id, version, recorded_at, event_type, amount, balance_after,"
                    " description, command_id) FROM STDIN").format(table(tables, TABLE))) as copy:
                for row in rows:
                    await copy.write_row(row)


class Movement(NamedTuple):
    """One row of the statement, in its columns' order."""

    account_id: str
    version: int
    recorded_at: datetime
    event_type: str
    amount: int
    balance_after: int
    description: str
    command_id: str | None


def movement(account_id: str, stored: StoredEvent, event: Event, before: int) -> Movement | None:
    """The statement row of ``event`` when the balance was ``before``; None if it moves no money."""
    amount = balance_change(event)
    if not amount:
        return None
    return Movement(account_id, stored.version, stored.recorded_at, event.type, amount,
                    before + amount, getattr(event, "description", ""), event.command_id)


async def _last_balances(conn: AsyncConnection[Any], tables: Tables,
                         account_ids: set[str]) -> dict[str, int]:
    cursor = await conn.execute(sql.SQL(
        "SELECT DISTINCT ON (account_id) account_id, balance_after FROM {}"
        " WHERE account_id = ANY(%s) ORDER BY account_id, version DESC").format(
            table(tables, TABLE)), (list(account_ids),))
    return dict(await cursor.fetchall())
