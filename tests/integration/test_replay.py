"""Replay regenerates every projection from the log: into shadow tables, swapped in at once,
with events committed meanwhile caught up; interrupted, it resumes; a corrupt log stops it
before anything is swapped."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import psycopg
import pytest

from client import AccountClient, InsufficientFunds
from operations.replay.account import replay_account
from operations.replay.rebuild import rebuild
from operations.replay.scan import CorruptLog
from projections import PROJECTIONS, REPLAYED
from projections.runner import ProjectionRunner
from starter import cli
from tests.integration.helpers import new_account_id

TABLES = {"accounts": "account_id", "account_statement": "account_id, version",
          "daily_totals": "day, currency", "daily_totals_currencies": "account_id"}
COLUMNS = {"accounts": "account_id, currency, balance, version, status, overdraft_limit"}


async def rows(conn: psycopg.AsyncConnection, table: str) -> list[tuple[Any, ...]]:
    columns = COLUMNS.get(table, "*")
    cursor = await conn.execute(f"SELECT {columns} FROM {table} ORDER BY {TABLES[table]}")
    return await cursor.fetchall()


async def everything(conn: psycopg.AsyncConnection) -> dict[str, list[tuple[Any, ...]]]:
    return {table: await rows(conn, table) for table in TABLES}


async def traffic(accounts: AccountClient, count: int = 3, prefix: str = "") -> list[str]:
    """Open accounts and send funds, charges (some declined) and a close with a payout (which
    also makes the final invoice)."""
    ids = [f"{prefix}{new_account_id()}" for _ in range(count)]
    for index, account_id in enumerate(ids):
        await accounts.open(account_id, "EUR" if index % 2 else "USD", overdraft_limit=100)
        for step in range(12):
            if step % 3:
                await accounts.add_funds(account_id, 100 + step, command_id=f"f{step}",
                                         description=f"top-up {step}")
            else:
                with contextlib.suppress(InsufficientFunds):
                    await accounts.charge(account_id, 250 * step + 50, command_id=f"c{step}")
    await accounts.close(ids[0], command_id="bye", reason="test", payout=True)
    await asyncio.wait_for(accounts.handle(ids[0]).result(), 30)  # its final invoice is made
    return ids


@pytest.fixture
async def live(client, task_queue, worker, pool, worker_pool):
    """A live system: accounts driven through their workflows, projections caught up."""
    accounts = AccountClient(client, task_queue, rpc_timeout=15)
    ids = await traffic(accounts)
    runner = ProjectionRunner(worker_pool, PROJECTIONS)
    await _settle(accounts, ids, runner)
    return accounts, runner


async def _settle(accounts: AccountClient, ids: list[str], runner: ProjectionRunner) -> None:
    for account_id in ids:
        await accounts.wait_for(account_id, lambda view: view.pending_commands == 0)
    while (await runner.catch_up())[0]:
        pass


async def test_a_replay_gives_exactly_what_the_live_system_wrote_and_repairs_a_tampered_row(
        live, owner_db_url, pool):
    async with await psycopg.AsyncConnection.connect(owner_db_url, autocommit=True) as conn:
        before = await everything(conn)
        await conn.execute("UPDATE accounts SET balance = balance + 1 WHERE account_id = %s",
                           (before["accounts"][0][0],))
        phases: list[str] = []
        done = await rebuild(conn, REPLAYED, chunk=7, on_progress=lambda p: phases.append(p.phase))
        after = await everything(conn)

    assert after == before  # the tampered balance is repaired, everything else is identical
    assert len(before["account_statement"]) > 10 and before["daily_totals"]
    assert done.events_done == done.events_total and "scanning" in phases
    await _assert_privileges_kept(pool)


async def test_events_committed_during_a_replay_are_caught_up_before_the_swap(
        live, owner_db_url, worker_pool):
    accounts, runner = live
    async with await psycopg.AsyncConnection.connect(owner_db_url, autocommit=True) as conn:
        more: list[str] = []

        async def meanwhile(progress: Any) -> None:
            if progress.phase == "scanning" and not more:
                more.extend(await traffic(accounts, count=1, prefix="late-"))

        late: list[asyncio.Task[Any]] = []
        await rebuild(conn, REPLAYED, chunk=5,
                      on_progress=lambda p: late.append(asyncio.ensure_future(meanwhile(p))))
        await asyncio.gather(*late)
        await _settle(accounts, more, runner)
        replayed = await everything(conn)
        await rebuild(conn, REPLAYED)  # a second replay, with nothing happening meanwhile
        assert await everything(conn) == replayed
    assert any(row[0] == more[0] for row in replayed["accounts"])


async def test_an_interrupted_replay_resumes_where_it_stopped(live, owner_db_url):
    async with await psycopg.AsyncConnection.connect(owner_db_url, autocommit=True) as conn:
        before = await everything(conn)

        def stop_after_three(progress: Any) -> None:
            if progress.events_done >= 15:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            await rebuild(conn, REPLAYED, chunk=5, on_progress=stop_after_three)
        cursor = await conn.execute("SELECT events_done FROM replay_progress")
        [(interrupted_at,)] = await cursor.fetchall()
        done = await rebuild(conn, REPLAYED, chunk=5)
        assert await everything(conn) == before
    assert interrupted_at == 15 and done.events_done == done.events_total


@pytest.mark.parametrize("tamper, problem", [
    ("gap", "version 3 follows 1"),
    ("unparseable", "CHARGE_APPLIED does not parse"),
    ("repeated command id", "recorded more than once"),
])
async def test_a_corrupt_log_stops_the_replay_and_touches_nothing(live, owner_db_url, tamper, problem):
    async with await psycopg.AsyncConnection.connect(owner_db_url, autocommit=True) as conn:
        account = "zz-corrupt"
        await _corrupt(conn, account, tamper)
        before = await everything(conn)
        with pytest.raises(CorruptLog) as error:
            await rebuild(conn, REPLAYED)
        assert await everything(conn) == before
        cursor = await conn.execute("SELECT count(*) FROM replay_progress")
        assert (await cursor.fetchone()) == (0,)
    assert error.value.account_id == account and problem in str(error.value)


async def _corrupt(conn: psycopg.AsyncConnection, account: str, tamper: str) -> None:
    created = ('{"account_id": "zz-corrupt", "currency": "USD", "overdraft_limit": 0,'
               ' "billing_period": "monthly", "opened_at": null}')
    events = [(1, "ACCOUNT_CREATED", created, None, 2),
              (2, "FUND_ADDED", '{"amount": 5, "description": ""}', "a", 1)]
    if tamper == "gap":
        events[1] = (3, *events[1][1:])
    elif tamper == "unparseable":
        events.append((3, "CHARGE_APPLIED", '{"amount": "lots", "description": ""}', "b", 1))
    else:
        await conn.execute("ALTER TABLE account_events DROP CONSTRAINT one_event_per_command")
        events.append((3, "FUND_ADDED", '{"amount": 5, "description": ""}', "a", 1))
    for version, event_type, payload, command_id, schema in events:
        await conn.execute(
            "INSERT INTO account_events (event_id, account_id, version, event_type, payload,"
            " command_id, schema_version) VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, %s)",
            (account, version, event_type, payload, command_id, schema))


async def _assert_privileges_kept(pool: Any) -> None:
    """The swapped-in tables carry the live ones' grants: the worker can still write them."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT table_name, privilege_type FROM information_schema.table_privileges"
            " WHERE grantee = 'billing_writer' AND table_name = ANY(%s) ORDER BY 1, 2",
            (list(TABLES),))
        granted = {(table, privilege) for table, privilege in await cursor.fetchall()}
    assert ("accounts", "UPDATE") in granted and ("account_statement", "INSERT") in granted


# --- one account, and --verify, on a corrupt log -------------------------------------------------

@pytest.mark.parametrize("tamper, version, problem", [
    ("gap", 3, "version 3 follows 1"),
    ("unparseable", 3, "CHARGE_APPLIED does not parse"),
    ("repeated command id", 2, "recorded more than once"),
])
async def test_a_corrupt_log_stops_the_replay_of_its_account_and_touches_nothing(
        owner_db_url, worker_db_url, monkeypatch, capsys, tamper, version, problem):
    account = "zz-corrupt"
    async with await psycopg.AsyncConnection.connect(owner_db_url, autocommit=True) as conn:
        await _corrupt(conn, account, tamper)
        # Rows that a replay of the account would rewrite, if it got as far as writing.
        await conn.execute("INSERT INTO accounts (account_id, currency, balance, version)"
                           " VALUES (%s, 'USD', 999, 9)", (account,))
        await conn.execute("INSERT INTO account_statement (account_id, version, recorded_at,"
                           " event_type, amount, balance_after) VALUES (%s, 2, now(), 'FUND_ADDED',"
                           " 5, 5)", (account,))
        before = await everything(conn)
        with pytest.raises(CorruptLog) as error:
            await replay_account(conn, account)
        assert await everything(conn) == before
    assert (error.value.account_id, error.value.version) == (account, version)
    assert problem in str(error.value)

    monkeypatch.setenv("BILLING_MIGRATION_URL", owner_db_url)
    monkeypatch.setenv("DATABASE_URL", worker_db_url)
    code = await asyncio.to_thread(cli.run, ["replay", "--account", account])
    shown = capsys.readouterr()
    assert code == 1 and shown.err.strip() == (
        f"error: the log cannot be replayed, nothing was written: {error.value}"), shown
    code = await asyncio.to_thread(cli.run, ["replay", "--verify", "--json"])
    verified = capsys.readouterr()
    assert code == 1, verified
    findings = json.loads(verified.out)["findings"]
    assert findings and {finding["account_id"] for finding in findings} == {account}, findings
