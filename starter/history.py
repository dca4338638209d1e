"""An account's history, read straight from the event log in Postgres (``account_events``).

The log is the source of truth, so ``billing history`` needs no Temporal server, only
DATABASE_URL. Reads are plain SELECTs; nothing here writes. ``event_log_errors`` is how every
verb that reads the log reports a database it cannot read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from pydantic import BaseModel

from domain.money import format_minor_units
from starter.errors import CliError, ExitCode

CONNECT_TIMEOUT_SECONDS = 10

_EVENTS = """
SELECT version, recorded_at, event_type, payload, command_id
  FROM account_events
 WHERE account_id = %s
 ORDER BY version
"""


class HistoryEntry(BaseModel):
    """One event, flattened for display: ``amount`` in minor units when the event has one,
    ``detail`` the reason, description or settings it carries."""

    version: int
    recorded_at: datetime
    event_type: str
    amount: int | None
    detail: str
    command_id: str | None


class History(BaseModel):
    account_id: str
    currency: str
    events: list[HistoryEntry]


async def read_history(database_url: str, account_id: str) -> History:
    """Every event of ``account_id`` in version order; CliError NOT_FOUND when there are none."""
    rows = await _fetch(database_url, _EVENTS, (account_id,))
    if not rows:
        raise CliError(f"account {account_id} not found in the event log", ExitCode.NOT_FOUND)
    currency = next((payload.get("currency", "") for _, _, kind, payload, _ in rows
                     if kind == "ACCOUNT_CREATED"), "")
    return History(account_id=account_id, currency=currency,
                   events=[_entry(*row, currency=currency) for row in rows])


async def count_events(database_url: str, account_ids: list[str]) -> dict[str, int]:
    """How many events of each type these accounts have (the demo's summary)."""
    rows = await _fetch(database_url, "SELECT event_type, count(*) FROM account_events"
                        " WHERE account_id = ANY(%s) GROUP BY event_type ORDER BY 1", (account_ids,))
    return {event_type: count for event_type, count in rows}


async def _fetch(database_url: str, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    with event_log_errors(no_log=ExitCode.NOT_FOUND):
        async with await psycopg.AsyncConnection.connect(
                database_url, connect_timeout=CONNECT_TIMEOUT_SECONDS) as conn:
            cursor = await conn.execute(query, params)
            return await cursor.fetchall()


@contextmanager
def event_log_errors(*, no_log: ExitCode) -> Iterator[None]:
    """Raise Postgres failures from the block as CliErrors: out of reach (UNAVAILABLE), or no
    event log yet (``no_log``: to `history` an unknown account, to `check` a setup problem)."""
    try:
        yield
    except psycopg.errors.UndefinedTable:
        raise CliError("DATABASE_URL has no event log yet: start the worker once to apply the "
                       "migrations", no_log) from None
    except psycopg.OperationalError as error:
        reason = (str(error).strip() or "no reason given").splitlines()[0]
        raise CliError(f"cannot read the event log at DATABASE_URL ({reason})",
                       ExitCode.UNAVAILABLE) from None


def _entry(version: int, recorded_at: datetime, event_type: str, payload: dict[str, Any],
           command_id: str | None, *, currency: str) -> HistoryEntry:
    if event_type == "ACCOUNT_CREATED":
        limit = format_minor_units(payload.get("overdraft_limit", 0), currency)
        detail = f"currency {currency}, overdraft limit {limit}"
    else:
        detail = payload.get("reason") or payload.get("description") or ""
    return HistoryEntry(version=version, recorded_at=recorded_at, event_type=event_type,
                        amount=payload.get("amount"), detail=detail, command_id=command_id)
