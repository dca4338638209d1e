"""The SQL side of reconciliation: projections compared with folded states, set-based checks
of the log that return only the offending rows, and the connection and snapshot they share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

from psycopg import AsyncConnection, sql
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from activities.rows import STORED_EVENT, StoredEvent
from domain.state import AccountState
from operations.reconcile.fold import LogFold
from operations.reconcile.report import Finding

EVENT_COLUMNS = f"account_id, transaction_id::text, position, {STORED_EVENT}"


# --- projections: read models derived from the log --------------------------------------------

class Projection(Protocol):
    """A read model and how to check it: ``compare`` a batch of folded states with its rows,
    and find ``orphans``, rows for accounts that have no log at all (or, for a check over the
    whole log, whatever is left once every account is folded)."""

    name: str

    async def compare(self, conn: AsyncConnection[Any],
                      folded: Mapping[str, AccountState]) -> list[Finding]: ...

    async def orphans(self, conn: AsyncConnection[Any], ids: list[str] | None) -> list[Finding]: ...


class _AccountsCheck:
    """The ``accounts`` table: a row per account, equal to the folded state."""

    name = "accounts"

    async def compare(self, conn: AsyncConnection[Any],
                      folded: Mapping[str, AccountState]) -> list[Finding]:
        return await _compare_accounts(conn, folded)

    async def orphans(self, conn: AsyncConnection[Any], ids: list[str] | None) -> list[Finding]:
        return await _accounts_without_log(conn, ids)


async def _compare_accounts(conn: AsyncConnection,
                            folded: Mapping[str, AccountState]) -> list[Finding]:
    cursor = await conn.execute(
        "SELECT account_id, balance, version, status, currency, overdraft_limit FROM accounts"
        " WHERE account_id = ANY(%s)", (list(folded),))
    rows = {row[0]: row[1:] for row in await cursor.fetchall()}
    findings = []
    for account_id, state in folded.items():
        row = rows.get(account_id)
        if row is None:
            findings.append(Finding(account_id=account_id, field="accounts.row", expected="a row",
                                    actual=None, detail=f"the log has {state.version} events"))
            continue
        expected = (state.balance, state.version, state.status.value, state.currency,
                    state.overdraft_limit)
        for name, want, got in zip(("balance", "version", "status", "currency", "overdraft_limit"),
                                   expected, row, strict=False):
            if want != got:
                findings.append(Finding(account_id=account_id, field=f"accounts.{name}",
                                        expected=want, actual=got, detail="folded from the log"))
    return findings


async def _accounts_without_log(conn: AsyncConnection, ids: list[str] | None) -> list[Finding]:
    cursor = await conn.execute(sql.SQL(
        "SELECT account_id, version FROM accounts a WHERE NOT EXISTS"
        " (SELECT 1 FROM account_events e WHERE e.account_id = a.account_id){}"
    ).format(_and_ids(ids, "a")), {"ids": ids})
    return [Finding(account_id=account_id, field="events", expected=version, actual=0,
                    detail=f"the accounts row is at version {version} but the log is empty")
            async for account_id, version in cursor]


ACCOUNTS: Projection = _AccountsCheck()


# --- set-based checks of the log --------------------------------------------------------------

async def log_checks(conn: AsyncConnection,
                      ids: list[str] | None) -> tuple[list[Finding], set[str]]:
    """Version ranges, repeated command ids, fund/charge events without one. Also returns the
    accounts whose log cannot be folded (a bad version range, an event that cannot parse)."""
    params = {"ids": ids}
    findings = []
    cursor = await conn.execute(sql.SQL(
        "SELECT account_id, count(*), min(version), max(version) FROM account_events{}"
        " GROUP BY account_id HAVING count(*) <> max(version) OR min(version) <> 1"
    ).format(where_ids(ids)), params)
    findings += [Finding(account_id=account_id, field="versions", expected=f"1..{count}",
                         actual=f"{low}..{high}", detail=f"{count} events")
                 async for account_id, count, low, high in cursor]
    cursor = await conn.execute(sql.SQL(
        "SELECT account_id, command_id, array_agg(version ORDER BY version) FROM account_events"
        " WHERE command_id IS NOT NULL{} GROUP BY account_id, command_id HAVING count(*) > 1"
    ).format(_and_ids(ids)), params)
    findings += [Finding(account_id=account_id, field="command_id", expected="applied once",
                         actual=f"applied {len(versions)} times",
                         detail=f"{command_id} at versions {versions}")
                 async for account_id, command_id, versions in cursor]
    cursor = await conn.execute(sql.SQL(
        "SELECT account_id, version, event_type FROM account_events WHERE command_id IS NULL"
        " AND event_type IN ('FUND_ADDED', 'CHARGE_APPLIED', 'CHARGE_DECLINED'){}"
    ).format(_and_ids(ids)), params)
    findings += [Finding(account_id=account_id, field="command_id", expected="a command id",
                         actual=None, detail=f"{event_type} at version {version}")
                 async for account_id, version, event_type in cursor]
    unfoldable = {f.account_id for f in findings if f.field == "versions" or f.actual is None}
    return findings, unfoldable


async def unknown_accounts(conn: AsyncConnection, ids: list[str]) -> list[Finding]:
    """Asked-for accounts with neither a log nor a row: most likely a mistyped id."""
    cursor = await conn.execute(
        "SELECT id FROM unnest(%(ids)s::text[]) AS id WHERE NOT EXISTS"
        " (SELECT 1 FROM account_events e WHERE e.account_id = id)"
        " AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.account_id = id)", {"ids": ids})
    return [Finding(account_id=account_id, field="account", expected="a log or a row",
                    actual=None, detail="no such account") async for (account_id,) in cursor]


def where_ids(ids: list[str] | None, alias: str | None = None) -> sql.Composable:
    return sql.SQL("") if ids is None else sql.SQL(" WHERE ") + _id_filter(alias)


def _and_ids(ids: list[str] | None, alias: str | None = None) -> sql.Composable:
    return sql.SQL("") if ids is None else sql.SQL(" AND ") + _id_filter(alias)


def _id_filter(alias: str | None) -> sql.Composable:
    column = sql.Identifier(alias, "account_id") if alias else sql.Identifier("account_id")
    return sql.SQL("{} = ANY(%(ids)s)").format(column)


async def fold_accounts(conn: AsyncConnection, ids: list[str]) -> dict[str, AccountState]:
    """A fresh fold of a few accounts' logs, in a transaction of its own; broken logs are left
    out (they are reported already)."""
    folds: dict[str, LogFold] = {}
    async with conn.transaction():
        cursor = await conn.execute(f"SELECT {EVENT_COLUMNS} FROM account_events"
                                    " WHERE account_id = ANY(%s) ORDER BY account_id, version", (ids,))
        async for account_id, _, _, *row in cursor:
            folds.setdefault(account_id, LogFold(account_id)).add(StoredEvent(*row))
    return {account_id: fold.state for account_id, fold in folds.items() if not fold.broken}


# --- connections -------------------------------------------------------------------------------

@asynccontextmanager
async def connection(source: AsyncConnection | AsyncConnectionPool | str) -> AsyncIterator[AsyncConnection]:
    """A connection from whatever the caller has: itself, a pool's, or a new one to a URL."""
    if isinstance(source, AsyncConnection):
        yield source
    elif isinstance(source, AsyncConnectionPool):
        async with source.connection() as conn:
            yield conn
    else:
        async with await AsyncConnection.connect(source, autocommit=True) as conn:
            yield conn


@asynccontextmanager
async def snapshot(conn: AsyncConnection) -> AsyncIterator[None]:
    """One read-only transaction with a single snapshot (unless the caller's is already open)."""
    outermost = conn.info.transaction_status == TransactionStatus.IDLE
    async with conn.transaction():
        if outermost:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield
