"""What people ask of the log and its projections: an account's statement, its balance at a
past instant, and how far behind each projection is. Plain reads, for the CLI and the gateway.
"""

from __future__ import annotations

from datetime import datetime
from functools import reduce
from typing import Any

from psycopg import AsyncConnection
from pydantic import BaseModel

from activities.rows import STORED_EVENT, StoredEvent, in_order
from domain.account import evolve
from domain.state import AccountState
from projections import statement
from projections.checkpoints import all_checkpoints
from projections.feed import lag


class StatementLine(BaseModel):
    version: int
    recorded_at: datetime
    event_type: str
    amount: int
    balance_after: int
    description: str
    command_id: str | None


class Statement(BaseModel):
    account_id: str
    currency: str
    lines: list[StatementLine]


async def read_statement(conn: AsyncConnection[Any], account_id: str, start: datetime | None = None,
                         end: datetime | None = None) -> Statement | None:
    """The account's movements in ``[start, end)``; None when the log has no such account."""
    currency = await _currency(conn, account_id)
    if currency is None:
        return None
    cursor = await conn.execute(
        f"SELECT version, recorded_at, event_type, amount, balance_after, description, command_id"
        f" FROM {statement.TABLE} WHERE account_id = %s"
        " AND (%s::timestamptz IS NULL OR recorded_at >= %s)"
        " AND (%s::timestamptz IS NULL OR recorded_at < %s) ORDER BY version",
        (account_id, start, start, end, end))
    names = ("version", "recorded_at", "event_type", "amount", "balance_after", "description",
             "command_id")
    lines = [StatementLine(**dict(zip(names, row, strict=True))) for row in await cursor.fetchall()]
    return Statement(account_id=account_id, currency=currency, lines=lines)


class BalanceAsOf(BaseModel):
    account_id: str
    currency: str
    as_of: datetime
    balance: int
    version: int
    """The last event at or before ``as_of``: the balance reflects events 1..version."""


async def balance_as_of(conn: AsyncConnection[Any], account_id: str,
                        moment: datetime) -> BalanceAsOf | None:
    """The balance at ``moment``, folded from the log with ``evolve``: the events in version
    order, up to the first recorded after ``moment``. None when there is no such account."""
    currency = await _currency(conn, account_id)
    if currency is None:
        return None
    cursor = await conn.execute(
        f"SELECT {STORED_EVENT} FROM account_events WHERE account_id = %s ORDER BY version",
        (account_id,))
    rows = []
    for row in await cursor.fetchall():
        stored = StoredEvent(*row)
        if stored.recorded_at > moment:
            break
        rows.append(stored)
    state = reduce(evolve, in_order(account_id, rows), AccountState(account_id))
    return BalanceAsOf(account_id=account_id, currency=currency, as_of=moment,
                       balance=state.balance, version=state.version)


async def _currency(conn: AsyncConnection[Any], account_id: str) -> str | None:
    cursor = await conn.execute(
        "SELECT payload->>'currency' FROM account_events WHERE account_id = %s AND version = 1",
        (account_id,))
    row = await cursor.fetchone()
    return row[0] if row else None


class ProjectionStatus(BaseModel):
    name: str
    transaction_id: int
    position: int
    events_applied: int
    lag_events: int
    lag_seconds: float
    last_recorded_at: datetime | None
    updated_at: datetime
    failure: str | None
    failed_position: int | None


async def projection_status(conn: AsyncConnection[Any]) -> list[ProjectionStatus]:
    """Every projection's checkpoint, and how far behind the log it is."""
    statuses = []
    for checkpoint in await all_checkpoints(conn):
        behind = await lag(conn, checkpoint.at)
        statuses.append(ProjectionStatus(
            name=checkpoint.name, transaction_id=checkpoint.at.transaction_id,
            position=checkpoint.at.position, events_applied=checkpoint.events_applied,
            lag_events=behind.events, lag_seconds=round(behind.seconds, 3),
            last_recorded_at=checkpoint.last_recorded_at, updated_at=checkpoint.updated_at,
            failure=checkpoint.failure, failed_position=checkpoint.failed_position))
    return statuses
