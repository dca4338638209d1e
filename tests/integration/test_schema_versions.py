"""Events written in an older shape are read in today's: ACCOUNT_CREATED schema version 1 (no
``billing_period``, no ``opened_at``), as the log of a system from before version 2 holds it,
through a full replay, a replay of one account, the check, and the account's own workflow,
which loads it from the log and keeps working on it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from client import AccountClient, AccountExists, InsufficientFunds
from domain.events import AccountCreated
from domain.upcasting import SCHEMA_VERSIONS
from operations.reconcile import reconcile
from operations.replay.account import replay_account
from operations.replay.rebuild import rebuild
from projections import REPLAYED
from tests.integration.helpers import fetch_stored, new_account_id

RECORDED_AT = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)


async def write_old_log(conn: psycopg.AsyncConnection, account_id: str, currency: str = "EUR",
                        recorded_at: datetime = RECORDED_AT) -> None:
    """An account as a system from before ACCOUNT_CREATED v2 wrote it: its log (schema version
    1 throughout, recorded at one instant, by default on one day in 2024) and its ``accounts``
    row. Balance 70."""
    events = [
        ("ACCOUNT_CREATED", f'{{"account_id": "{account_id}", "currency": "{currency}",'
                            ' "overdraft_limit": 20}', None),
        ("FUND_ADDED", '{"amount": 100, "description": "opening deposit"}', "old-f1"),
        ("CHARGE_APPLIED", '{"amount": 30, "description": "fee"}', "old-c1"),
        ("CHARGE_DECLINED", '{"amount": 500, "description": "", "reason": "insufficient funds",'
                            ' "balance": 70}', "old-c2"),
    ]
    for version, (event_type, payload, command_id) in enumerate(events, start=1):
        await conn.execute(
            "INSERT INTO account_events (event_id, account_id, version, event_type, payload,"
            " command_id, schema_version, recorded_at)"
            " VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, 1, %s)",
            (account_id, version, event_type, payload, command_id, recorded_at))
    await conn.execute("INSERT INTO accounts (account_id, currency, balance, version, status,"
                       " overdraft_limit) VALUES (%s, %s, 70, 4, 'open', 20)", (account_id, currency))


async def test_a_log_in_the_old_shape_reads_replays_and_checks_clean(owner_db_url, pool):
    async with await psycopg.AsyncConnection.connect(owner_db_url, autocommit=True) as conn:
        await write_old_log(conn, "old-1")
        await write_old_log(conn, "old-2", currency="JPY")
        done = await rebuild(conn, REPLAYED)
        one = await replay_account(conn, "old-1")
        accounts = await (await conn.execute(
            "SELECT account_id, currency, balance, version, status, overdraft_limit FROM accounts"
            " ORDER BY 1")).fetchall()
        statement = await (await conn.execute(
            "SELECT version, recorded_at, event_type, amount, balance_after, description, command_id"
            " FROM account_statement WHERE account_id = 'old-1' ORDER BY version")).fetchall()
        totals = await (await conn.execute("SELECT * FROM daily_totals ORDER BY currency")).fetchall()

    first = (await fetch_stored(pool, "old-1"))[0]
    assert first.schema_version == 1 and "opened_at" not in first.payload  # stored as it was
    assert first.event() == AccountCreated(account_id="old-1", currency="EUR", overdraft_limit=20,
                                           billing_period="monthly", opened_at=RECORDED_AT)
    assert done.events_done == 8
    assert accounts == [("old-1", "EUR", 70, 4, "open", 20), ("old-2", "JPY", 70, 4, "open", 20)]
    assert one is not None and (one.version, one.balance, one.statement_rows) == (4, 70, 2)
    assert statement == [(2, RECORDED_AT, "FUND_ADDED", 100, 100, "opening deposit", "old-f1"),
                         (3, RECORDED_AT, "CHARGE_APPLIED", -30, 70, "fee", "old-c1")]
    day = date(2024, 2, 29)
    assert totals == [(day, "EUR", 1, 100, 1, 30, 1, 500), (day, "JPY", 1, 100, 1, 30, 1, 500)]
    report = await reconcile(owner_db_url)
    assert report.ok, report.findings


async def test_a_workflow_started_on_an_account_written_in_the_old_shape_keeps_working(
        client, task_queue, worker, owner_db_url, pool):
    account_id = new_account_id()
    async with await psycopg.AsyncConnection.connect(owner_db_url, autocommit=True) as conn:
        # Recorded a minute ago: a v1 account is billed monthly from its first event's time, so
        # one recorded in 2024 would have its workflow draft and finalize every invoice since.
        await write_old_log(conn, account_id, recorded_at=datetime.now(UTC) - timedelta(minutes=1))
    accounts = AccountClient(client, task_queue, rpc_timeout=15)

    # The account's log exists: its workflow loads it instead of opening a new account.
    with pytest.raises(AccountExists) as exists:
        await accounts.open(account_id, "EUR")
    opened = exists.value.outcome
    assert opened is not None
    funded = await accounts.add_funds(account_id, 5, command_id="new-f1")
    repeat = await accounts.add_funds(account_id, 100, command_id="old-f1")  # recorded in v1 days
    with pytest.raises(InsufficientFunds):
        await accounts.charge(account_id, 96, command_id="new-c1")  # 75 + 20 overdraft < 96
    charged = await accounts.charge(account_id, 95, command_id="new-c2")

    assert not opened.created
    assert (opened.account.balance, opened.account.version, opened.account.overdraft_limit) == (70, 4, 20)
    assert funded is not None and (funded.status, funded.balance, funded.version) == ("applied", 75, 5)
    assert repeat is not None and (repeat.status, repeat.version) == ("duplicate", 2)
    assert charged is not None and (charged.balance, charged.version) == (-20, 7)
    stored = await fetch_stored(pool, account_id)
    assert [(row.version, row.schema_version) for row in stored] == [
        (1, 1), (2, 1), (3, 1), (4, 1), (5, SCHEMA_VERSIONS["FUND_ADDED"]),
        (6, SCHEMA_VERSIONS["CHARGE_DECLINED"]), (7, SCHEMA_VERSIONS["CHARGE_APPLIED"])]
    report = await reconcile(pool, temporal_client=accounts, account_ids=[account_id])
    assert report.ok, report.findings
