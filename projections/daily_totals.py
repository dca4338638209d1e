"""Daily totals per currency: funds, charges and declined charges, counts and sums, per UTC day
of the event's ``recorded_at``. Each account's currency is learned from its ACCOUNT_CREATED."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from psycopg import AsyncConnection, sql

from domain.events import AccountCreated, ChargeApplied, ChargeDeclined, Event, FundsAdded
from projections.base import Tables, table
from projections.feed import FeedEvent

NAME = "daily_totals"
TABLE = "daily_totals"
CURRENCIES = "daily_totals_currencies"
_KINDS = {FundsAdded: "funds", ChargeApplied: "charges", ChargeDeclined: "declines"}


Key = tuple[date, str, str]
"""(UTC day, currency, kind: funds, charges or declines)."""


def tally(event: Event, recorded_at: datetime, currency: str) -> tuple[Key, int] | None:
    """Where ``event`` counts in the totals and its amount; None for events that do not count."""
    if not isinstance(event, FundsAdded | ChargeApplied | ChargeDeclined):
        return None
    return (recorded_at.astimezone(UTC).date(), currency, _KINDS[type(event)]), event.amount


class DailyTotals:
    name: str = NAME
    tables: tuple[str, ...] = (TABLE, CURRENCIES)

    async def apply(self, conn: AsyncConnection[Any], events: Sequence[FeedEvent],
                    tables: Tables) -> None:
        currencies = await self._currencies(conn, events, tables)
        counts: Counter[Key] = Counter()
        sums: Counter[Key] = Counter()
        for feed_event in events:
            currency = currencies.get(feed_event.account_id)
            if currency is None:
                raise ValueError(f"account {feed_event.account_id}: its ACCOUNT_CREATED was not "
                                 f"seen before its version {feed_event.version}")
            counted = tally(feed_event.event, feed_event.stored.recorded_at, currency)
            if counted is not None:
                key, amount = counted
                counts[key] += 1
                sums[key] += amount
        if counts:
            await self._add(conn, tables, counts, sums)

    async def _currencies(self, conn: AsyncConnection[Any], events: Sequence[FeedEvent],
                          tables: Tables) -> dict[str, str]:
        """Each account's currency: those opened in ``events`` are stored for later chunks."""
        opened = {}
        for feed_event in events:
            event = feed_event.event
            if isinstance(event, AccountCreated):
                opened[feed_event.account_id] = event.currency
        if opened:
            await conn.execute(sql.SQL(
                "INSERT INTO {} (account_id, currency) SELECT * FROM unnest(%s::text[], %s::text[])"
                " ON CONFLICT (account_id) DO NOTHING").format(table(tables, CURRENCIES)),
                (list(opened), list(opened.values())))
        wanted = [e.account_id for e in events if e.account_id not in opened]
        cursor = await conn.execute(sql.SQL(
            "SELECT account_id, currency FROM {} WHERE account_id = ANY(%s)").format(
                table(tables, CURRENCIES)), (wanted,))
        return {**dict(await cursor.fetchall()), **opened}

    @staticmethod
    async def _add(conn: AsyncConnection[Any], tables: Tables,
                   counts: Counter[Key], sums: Counter[Key]) -> None:
        days = sorted({(day, currency) for day, currency, _ in counts})
        columns = [[counts[(day, currency, kind)] if measure == "count" else sums[(day, currency, kind)]
                    for day, currency in days]
                   for kind in _KINDS.values() for measure in ("count", "amount")]
        await conn.execute(sql.SQL(
            "INSERT INTO {t} AS t (day, currency, funds_count, funds_amount, charges_count,"
            " charges_amount, declines_count, declines_amount)"
            " SELECT * FROM unnest(%s::date[], %s::text[], %s::bigint[], %s::numeric[],"
            " %s::bigint[], %s::numeric[], %s::bigint[], %s::numeric[])"
            " ON CONFLICT (day, currency) DO UPDATE SET"
            " funds_count = t.funds_count + EXCLUDED.funds_count,"
            " funds_amount = t.funds_amount + EXCLUDED.funds_amount,"
            " charges_count = t.charges_count + EXCLUDED.charges_count,"
            " charges_amount = t.charges_amount + EXCLUDED.charges_amount,"
            " declines_count = t.declines_count + EXCLUDED.declines_count,"
            " declines_amount = t.declines_amount + EXCLUDED.declines_amount").format(
                t=table(tables, TABLE)),
            [[day for day, _ in days], [currency for _, currency in days], *columns])
