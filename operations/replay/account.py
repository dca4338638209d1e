"""Replay one account: its ``accounts`` row (from its latest snapshot and the events after it)
and its statement rows, rewritten in one transaction while its appends wait.

The statement is rebuilt only as far as the statement's checkpoint (its runner is paused
meanwhile), so the runner goes on exactly where the rebuilt rows end. The daily totals mix every
account and are rebuilt by a full replay only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from temporalio.exceptions import ApplicationError

from activities import snapshots
from activities.rows import CORRUPT_LOG, STORED_EVENT, StoredEvent, UnreadableEvent
from operations.replay.scan import CorruptLog, repeated_command
from projections import statement
from projections.base import live
from projections.checkpoints import hold
from projections.feed import FeedEvent, FeedPosition


@dataclass(frozen=True)
class AccountReplay:
    account_id: str
    version: int
    balance: int
    snapshot_version: int
    events_read: int
    statement_rows: int


async def replay_account(conn: AsyncConnection[Any], account_id: str) -> AccountReplay | None:
    """Rewrite the account's rows from its log; None when the log has no such account."""
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM accounts WHERE account_id = %s FOR UPDATE", (account_id,))
        loaded = await _load(conn, account_id)
        state = loaded.state
        if not state.exists:
            return None
        await conn.execute(
            "INSERT INTO accounts (account_id, currency, balance, version, status, overdraft_limit)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (account_id) DO UPDATE SET"
            " balance = EXCLUDED.balance, version = EXCLUDED.version, status = EXCLUDED.status,"
            " currency = EXCLUDED.currency, overdraft_limit = EXCLUDED.overdraft_limit,"
            " updated_at = now()",
            (account_id, state.currency, state.balance, state.version, state.status.value,
             state.overdraft_limit))
        rows = await _statement(conn, account_id)
    return AccountReplay(account_id, state.version, state.balance, loaded.snapshot_version,
                         loaded.events_read, rows)


async def _load(conn: AsyncConnection[Any], account_id: str) -> snapshots.Loaded:
    """The account from its latest snapshot and the events after it; ``CorruptLog`` naming the
    version for a gap, an event that does not parse, or a command id recorded twice."""
    if (repeated := await repeated_command(conn, account_id)) is not None:
        raise repeated
    try:
        return await snapshots.load(conn, account_id)
    except UnreadableEvent as error:
        raise CorruptLog(account_id, error.version, error.reason) from None
    except ApplicationError as error:
        if error.type != CORRUPT_LOG:
            raise
        version = error.details[0] if error.details else 0
        raise CorruptLog(account_id, int(version), error.message) from None


async def _statement(conn: AsyncConnection[Any], account_id: str) -> int:
    """The account's statement rows, rebuilt up to the statement's checkpoint."""
    checkpoint = await hold(conn, statement.NAME)
    at = checkpoint.at if checkpoint else FeedPosition()
    await conn.execute(f"DELETE FROM {statement.TABLE} WHERE account_id = %s", (account_id,))
    cursor = await conn.execute(
        f"SELECT transaction_id::text AS xid, position, event_id, account_id, {STORED_EVENT}"
        " FROM account_events WHERE account_id = %s"
        " AND (transaction_id, position) <= (%s::text::xid8, %s) ORDER BY version",
        (account_id, str(at.transaction_id), at.position))
    events = [FeedEvent(FeedPosition(int(xid), position), event_id, account, StoredEvent(*rest))
              for xid, position, event_id, account, *rest in await cursor.fetchall()]
    if events:
        await statement.Statement().apply(conn, events, live(statement.Statement()))
    cursor = await conn.execute(f"SELECT count(*) FROM {statement.TABLE} WHERE account_id = %s",
                                (account_id,))
    row = await cursor.fetchone()
    return row[0] if row else 0
