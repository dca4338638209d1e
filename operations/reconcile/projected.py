"""The eventually consistent projections, checked against the log (``check``, ``replay --verify``).

Each projection is as far as its checkpoint, so each check counts only the events at or before
it, in the same snapshot that reads the projection's rows. The expected rows come from the
projections' own pure helpers (``statement.movement``, ``daily_totals.tally``, ``domain.invoice``),
folded over the same stream of events as the accounts check, so nothing is computed twice by
different code. The invoices' check has a module of its own (``invoices``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from psycopg import AsyncConnection

from activities.rows import StoredEvent
from domain.events import Event
from domain.state import AccountState
from operations.reconcile.invoices import InvoicesCheck
from operations.reconcile.report import Finding
from projections import daily_totals, invoices, statement
from projections.checkpoints import all_checkpoints
from projections.feed import START, FeedPosition


class StatementCheck:
    """Per account: the statement's rows against the movements of the log."""

    name = statement.NAME

    def __init__(self, checkpoint: FeedPosition) -> None:
        self._checkpoint = checkpoint
        self._expected: dict[str, list[statement.Movement]] = defaultdict(list)

    def observe(self, account_id: str, at: FeedPosition, stored: StoredEvent, event: Event,
                before: AccountState, after: AccountState) -> None:
        if at <= self._checkpoint and after.balance != before.balance:
            row = statement.movement(account_id, stored, event, before.balance)
            if row is not None:
                self._expected[account_id].append(row)

    async def compare(self, conn: AsyncConnection[Any], folded: Mapping[str, AccountState]) -> list[Finding]:
        cursor = await conn.execute(
            f"SELECT * FROM {statement.TABLE} WHERE account_id = ANY(%s) ORDER BY account_id, version",
            (list(folded),))
        stored: dict[str, list[statement.Movement]] = defaultdict(list)
        for row in await cursor.fetchall():
            stored[row[0]].append(statement.Movement(*row))
        findings = []
        for account_id in folded:
            want, got = self._expected.pop(account_id, []), stored.get(account_id, [])
            findings += _row_drifts(account_id, statement.TABLE, want, got)
        return findings

    async def orphans(self, conn: AsyncConnection[Any], ids: list[str] | None) -> list[Finding]:
        return []


class DailyTotalsCheck:
    """Over the whole log: each day's and currency's counts and sums."""

    name = daily_totals.NAME

    def __init__(self, checkpoint: FeedPosition) -> None:
        self._checkpoint = checkpoint
        self._counts: Counter[daily_totals.Key] = Counter()
        self._sums: Counter[daily_totals.Key] = Counter()

    def observe(self, account_id: str, at: FeedPosition, stored: StoredEvent, event: Event,
                before: AccountState, after: AccountState) -> None:
        counted = daily_totals.tally(event, stored.recorded_at, after.currency)
        if at <= self._checkpoint and counted is not None:
            self._counts[counted[0]] += 1
            self._sums[counted[0]] += counted[1]

    async def compare(self, conn: AsyncConnection[Any], folded: Mapping[str, AccountState]) -> list[Finding]:
        return []

    async def orphans(self, conn: AsyncConnection[Any], ids: list[str] | None) -> list[Finding]:
        """Checked once every account is folded (only when every account was)."""
        if ids is not None:
            return []
        cursor = await conn.execute(f"SELECT day, currency, funds_count, funds_amount, charges_count,"
                                    f" charges_amount, declines_count, declines_amount"
                                    f" FROM {daily_totals.TABLE}")
        stored = {(day, currency): values for day, currency, *values in await cursor.fetchall()}
        findings = []
        for day, currency in sorted(set(stored) | {(d, c) for d, c, _ in self._counts}):
            want = [measure[(day, currency, kind)] for kind in ("funds", "charges", "declines")
                    for measure in (self._counts, self._sums)]
            got = [int(value) for value in stored.get((day, currency), [0] * 6)]
            for column, expected, actual in zip(_TOTALS, want, got, strict=True):
                if expected != actual:
                    findings.append(Finding(account_id=f"{day} {currency}",
                                            field=f"{daily_totals.TABLE}.{column}",
                                            expected=expected, actual=actual,
                                            detail="summed from the log"))
        return findings


_TOTALS = ("funds_count", "funds_amount", "charges_count", "charges_amount", "declines_count",
           "declines_amount")


def _row_drifts(account_id: str, table: str, want: list[Any], got: list[Any]) -> list[Finding]:
    """Rows by version: missing, unexpected, or different in a column."""
    findings = []
    wanted, stored = {row.version: row for row in want}, {row.version: row for row in got}
    for version in sorted(set(wanted) | set(stored)):
        expected, actual = wanted.get(version), stored.get(version)
        if expected is None or actual is None:
            findings.append(Finding(account_id=account_id, field=f"{table}.row",
                                    expected="a row" if expected else None,
                                    actual="a row" if actual else None, detail=f"version {version}"))
            continue
        for column, value in expected._asdict().items():
            if getattr(actual, column) != value:
                findings.append(Finding(account_id=account_id, field=f"{table}.{column}",
                                        expected=str(value), actual=str(getattr(actual, column)),
                                        detail=f"version {version}"))
    return findings


async def feed_checks(conn: AsyncConnection[Any]) -> list[StatementCheck | DailyTotalsCheck | InvoicesCheck]:
    """The checks of the feed's projections, each bounded by its checkpoint."""
    at = {checkpoint.name: checkpoint.at for checkpoint in await all_checkpoints(conn)}
    return [StatementCheck(at.get(statement.NAME, START)),
            DailyTotalsCheck(at.get(daily_totals.NAME, START)),
            InvoicesCheck(at.get(invoices.NAME, START))]
