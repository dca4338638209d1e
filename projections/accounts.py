"""The ``accounts`` table as a projection. The append writes it in the same statement as the
events, so no runner follows the feed for it; a replay rebuilds it with this, the same fold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection, sql

from domain.account import evolve
from domain.state import AccountState, AccountStatus
from projections.base import Tables, table
from projections.feed import FeedEvent

NAME = "accounts"
TABLE = "accounts"


class GapInLog(ValueError):
    """An account's events do not follow on from its row: the log is corrupt."""

    def __init__(self, account_id: str, version: int, after: int) -> None:
        super().__init__(f"account {account_id}: version {version} follows {after}")
        self.account_id, self.version = account_id, version


class Accounts:
    name: str = NAME
    tables: tuple[str, ...] = (TABLE,)

    async def apply(self, conn: AsyncConnection[Any], events: Sequence[FeedEvent],
                    tables: Tables) -> None:
        states = await _rows(conn, tables, {e.account_id for e in events})
        for feed_event in events:
            state = states.get(feed_event.account_id) or AccountState(feed_event.account_id)
            if feed_event.version != state.version + 1:
                raise GapInLog(feed_event.account_id, feed_event.version, state.version)
            states[feed_event.account_id] = evolve(state, feed_event.event)
        changed = [states[account_id] for account_id in dict.fromkeys(e.account_id for e in events)]
        await conn.execute(sql.SQL(
            "INSERT INTO {} AS a (account_id, currency, balance, version, status, overdraft_limit)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::text[],"
            " %s::bigint[])"
            " ON CONFLICT (account_id) DO UPDATE SET balance = EXCLUDED.balance,"
            " version = EXCLUDED.version, status = EXCLUDED.status, updated_at = now()").format(
                table(tables, TABLE)),
            [[s.account_id for s in changed], [s.currency for s in changed],
             [s.balance for s in changed], [s.version for s in changed],
             [s.status.value for s in changed], [s.overdraft_limit for s in changed]])


async def _rows(conn: AsyncConnection[Any], tables: Tables,
                account_ids: set[str]) -> dict[str, AccountState]:
    """The accounts' rows as states (without the command memory, which the table lacks)."""
    cursor = await conn.execute(sql.SQL(
        "SELECT account_id, currency, overdraft_limit, balance, version, status FROM {}"
        " WHERE account_id = ANY(%s)").format(table(tables, TABLE)), (list(account_ids),))
    return {row[0]: AccountState(row[0], row[1], row[2], row[3], row[4], AccountStatus(row[5]))
            for row in await cursor.fetchall()}
