"""Snapshots (``activities/snapshots.py``): written every K events in the transaction of the
append that crosses the boundary; loading an account starts from the latest snapshot of today's
state schema and reads only the events after it; other schemas are ignored; ``snapshots
rebuild`` regenerates them; and a snapshot is the very JSON that continue-as-new carries.

"Reads only the events after it" is shown two ways: the rows ``load`` fetched are counted, and
an event before the snapshot is made unreadable, which a load from the snapshot never notices
and a load from the start of the log does.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from psycopg import errors
from pydantic import TypeAdapter
from temporalio.api.enums.v1 import EventType

from activities import snapshots
from activities.contracts import AppendResult, LoadAccount
from activities.event_store import EventStore
from activities.rows import UnreadableEvent
from client import AccountClient
from domain.events import Event, FundsAdded
from domain.state import STATE_SCHEMA_VERSION, AccountState
from operations.replay.snapshots import SnapshotsRebuilt, rebuild_all
from starter import cli
from tests.integration.helpers import (
    all_runs,
    append_request,
    created,
    fetch_stored,
    fold,
    new_account_id,
    start_account,
    update,
)
from worker import build_worker
from workflows.interface import CommandOutcome, OpenOutcome

ACCOUNT = "snap-1"
EMPTY = AccountState(ACCOUNT)
STATE: TypeAdapter[AccountState] = TypeAdapter(AccountState)


def funds(first: int, last: int) -> list[Event]:
    """FUND_ADDED events meant for versions ``first``..``last``: amount = version, id f<version>."""
    return [FundsAdded(command_id=f"f{version}", amount=version) for version in range(first, last + 1)]


def as_json(state: AccountState) -> Any:
    return json.loads(STATE.dump_json(state))


async def append(store: EventStore, before: AccountState, events: list[Event]) -> AccountState:
    result = await store.append_events(append_request(before, events))
    after = fold(before, events)
    assert result == AppendResult(appended=True, version=after.version)
    return after


async def snapshot_row(pool, account_id: str = ACCOUNT,
                       schema: int = STATE_SCHEMA_VERSION) -> tuple[int, Any] | None:
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT version, state FROM account_snapshots WHERE account_id = %s"
                                    " AND state_schema_version = %s", (account_id, schema))
        return await cursor.fetchone()


async def make_unreadable(pool, account_id: str, version: int) -> None:
    """Rewrite one stored event so that it no longer parses (as the superuser, past the log's
    append-only trigger): any load that reads it fails."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("ALTER TABLE account_events DISABLE TRIGGER account_events_append_only")
        await conn.execute("UPDATE account_events SET payload = '{\"amount\": \"lots\"}'"
                           " WHERE account_id = %s AND version = %s", (account_id, version))
        await conn.execute("ALTER TABLE account_events ENABLE TRIGGER account_events_append_only")


async def load(pool, account_id: str = ACCOUNT) -> snapshots.Loaded:
    async with pool.connection() as conn:
        return await snapshots.load(conn, account_id)


# --- written every K events, with the append ---------------------------------------------------

async def test_a_snapshot_is_written_when_an_append_crosses_a_multiple_of_k(worker_pool, pool):
    store = EventStore(worker_pool, snapshot_every=3)
    state, seen = EMPTY, []
    # Batches ending at versions 1, 2, 4 (crosses 3), 5, 10 (crosses 6 and 9), 11, 12 (is 12).
    for events in ([created(ACCOUNT)], funds(2, 2), funds(3, 4), funds(5, 5), funds(6, 10),
                   funds(11, 11), funds(12, 12)):
        state = await append(store, state, events)
        row = await snapshot_row(pool)
        seen.append(row and row[0])
        if row is not None and row[0] == state.version:  # written by this append: today's state
            assert row[1] == as_json(state)
    assert seen == [None, None, 4, 4, 10, 10, 12]


async def test_the_snapshot_is_written_in_the_transaction_of_the_append(worker_pool, pool):
    store = EventStore(worker_pool, snapshot_every=4)
    state = await append(store, EMPTY, [created(ACCOUNT), *funds(2, 5)])
    async with pool.connection() as conn:
        # xmin: the transaction that wrote the snapshot row; the events' own transaction id.
        cursor = await conn.execute(
            "SELECT s.xmin::text::bigint, (SELECT DISTINCT e.transaction_id::text::bigint %% 4294967296"
            "  FROM account_events e WHERE e.account_id = s.account_id)"
            " FROM account_snapshots s WHERE s.account_id = %s", (ACCOUNT,))
        [(snapshot_xid, events_xid)] = await cursor.fetchall()
        assert snapshot_xid == events_xid
        # A snapshot that cannot be written takes its append down with it.
        await conn.execute(
            "CREATE FUNCTION refuse_snapshot() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " RAISE EXCEPTION 'no snapshot today'; END $$;"
            "CREATE TRIGGER refuse_snapshot BEFORE INSERT OR UPDATE ON account_snapshots"
            " FOR EACH ROW EXECUTE FUNCTION refuse_snapshot()")
    with pytest.raises(errors.RaiseException, match="no snapshot today"):
        await store.append_events(append_request(state, funds(6, 8)))
    assert (await load(pool)).state == state  # nothing of it was written
    assert await snapshot_row(pool) == (5, as_json(state))
    assert (await store.append_events(append_request(state, funds(6, 7)))).appended  # no crossing


async def test_a_store_snapshots_from_the_state_it_keeps_and_reads_when_another_wrote(worker_pool, pool):
    """A store keeps the state after its own appends, so its next snapshot needs no read; when
    another store (another worker) appended in between, the kept state is older than the append
    and the log is read instead."""
    first, second = EventStore(worker_pool, snapshot_every=3), EventStore(worker_pool, snapshot_every=3)
    state = await append(first, EMPTY, [created(ACCOUNT), *funds(2, 4)])  # first keeps v4
    state = await append(second, state, funds(5, 5))  # no crossing: second keeps nothing
    state = await append(first, state, funds(6, 7))  # crosses 6; first's v4 is stale: read
    assert await snapshot_row(pool) == (7, as_json(state))

    async with pool.connection() as conn:
        await conn.execute("DELETE FROM account_snapshots")
    await make_unreadable(pool, ACCOUNT, 2)  # a fold from the log would fail on it
    state = await append(first, state, funds(8, 9))  # crosses 9, from the v7 first kept
    assert await snapshot_row(pool) == (9, as_json(state))
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM account_snapshots")
    with pytest.raises(UnreadableEvent):  # the other store has nothing kept: it reads, and fails
        await second.append_events(append_request(state, funds(10, 12)))


# --- loading from the snapshot ------------------------------------------------------------------

async def test_loading_reads_only_the_events_after_the_latest_snapshot(worker_pool, pool):
    store = EventStore(worker_pool, snapshot_every=5)
    state = EMPTY
    for events in ([created(ACCOUNT), *funds(2, 5)], funds(6, 10), funds(11, 12)):
        state = await append(store, state, events)

    loaded = await load(pool)
    assert (loaded.state, loaded.snapshot_version, loaded.events_read) == (state, 10, 2)
    assert await store.load_account(LoadAccount(account_id=ACCOUNT)) == state

    await make_unreadable(pool, ACCOUNT, 7)  # before the snapshot: never read
    assert (await load(pool)).state == state
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM account_snapshots")
    with pytest.raises(UnreadableEvent, match="version 7: FUND_ADDED does not parse"):  # read now
        await load(pool)


@pytest.mark.parametrize("schema, state", [
    (STATE_SCHEMA_VERSION - 1, None),  # an older state schema, however plausible it looks
    (STATE_SCHEMA_VERSION + 1, None),  # a newer one (a worker of the next release beside this one)
    (STATE_SCHEMA_VERSION, {"account_id": ACCOUNT, "balance": "not a number"}),  # does not read
    (STATE_SCHEMA_VERSION, {"account_id": "someone-else", "currency": "USD", "version": 9}),
])
async def test_a_snapshot_that_is_not_of_todays_schema_or_does_not_read_is_ignored(
        worker_pool, pool, schema, state):
    store = EventStore(worker_pool, snapshot_every=0)  # none written by the appends
    real = await append(store, EMPTY, [created(ACCOUNT), *funds(2, 6)])
    bogus = state or {**as_json(real._replace(balance=10**9, version=5))}
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO account_snapshots (account_id, state_schema_version, version,"
                           " state) VALUES (%s, %s, 5, %s)", (ACCOUNT, schema, json.dumps(bogus)))

    loaded = await load(pool)

    assert (loaded.state, loaded.snapshot_version, loaded.events_read) == (real, 0, 6)


async def test_snapshots_rebuild_writes_every_account_afresh_and_drops_other_schemas(
        worker_pool, pool, owner_db_url, worker_db_url, monkeypatch, capsys):
    store = EventStore(worker_pool, snapshot_every=0)
    states = {}
    for account_id, last in (("a-1", 7), ("a-2", 3), ("a-3", 9)):
        start = AccountState(account_id)
        states[account_id] = await append(store, start, [created(account_id), *funds(2, last)])
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO account_snapshots (account_id, state_schema_version, version,"
                           " state) VALUES ('a-2', %s, 1, '{}')", (STATE_SCHEMA_VERSION + 1,))
        done = await rebuild_all(conn, chunk=4)  # chunks that end inside an account's log

    assert done == SnapshotsRebuilt(accounts=3, events=19, dropped=1)
    for account_id, state in states.items():
        assert await snapshot_row(pool, account_id) == (state.version, as_json(state))
        assert (await load(pool, account_id)).events_read == 0
    assert await snapshot_row(pool, "a-2", STATE_SCHEMA_VERSION + 1) is None

    # The same through the command line, after more events: the snapshots move on.
    states["a-2"] = await append(store, states["a-2"], funds(4, 5))
    monkeypatch.setenv("BILLING_MIGRATION_URL", owner_db_url)
    monkeypatch.setenv("DATABASE_URL", worker_db_url)
    code = await asyncio.to_thread(cli.run, ["snapshots", "rebuild", "--json"])
    output = capsys.readouterr().out
    assert code == 0, output
    assert json.loads(output) == {"accounts": 3, "events": 21, "dropped": 0}
    assert await snapshot_row(pool, "a-2") == (5, as_json(states["a-2"]))


# --- through the workflow ----------------------------------------------------------------------

@pytest.fixture
async def snapshot_worker(client, worker_pool, task_queue):
    """A worker that snapshots every 4 events."""
    async with build_worker(client, worker_pool, task_queue, snapshot_every=4) as running:
        yield running


async def test_a_workflow_started_on_an_existing_account_loads_from_its_snapshot(
        client, task_queue, snapshot_worker, pool):
    accounts = AccountClient(client, task_queue, rpc_timeout=15)
    account_id = new_account_id()
    await accounts.open(account_id, "USD")
    for number in range(1, 10):  # versions 2..10; snapshots at 4 and 8
        await accounts.add_funds(account_id, 100 * number, command_id=f"f{number}")
    handle = accounts.handle(account_id)
    await handle.terminate("a new run must load the account from the log")
    assert (await snapshot_row(pool, account_id))[0] == 8
    await make_unreadable(pool, account_id, 3)  # before the snapshot

    started = await client.start_workflow("AccountWorkflow", {"account_id": account_id, "currency": "USD"},
                                          id=handle.id, task_queue=task_queue)
    opened = await update(started, "opened", result_type=OpenOutcome)
    again = await update(started, "add_funds", {"command_id": "f2", "amount": 200})  # before it
    more = await update(started, "add_funds", {"command_id": "f10", "amount": 1})

    assert not opened.created and (opened.account.version, opened.account.balance) == (10, 4500)
    assert (again.status, again.version) == ("duplicate", 3)  # the snapshot carries the memory
    assert more == CommandOutcome(status="applied", command_id="f10", balance=4501, version=11)


async def test_the_state_continue_as_new_carries_is_the_snapshots_json(client, task_queue,
                                                                        snapshot_worker, pool):
    accounts = AccountClient(client, task_queue, rpc_timeout=15)
    account_id = new_account_id()
    handle = await start_account(client, task_queue, account_id, "EUR", overdraft_limit=50,
                                 history_budget=10)
    for number in range(1, 13):
        charge = number % 4 == 0
        send = accounts.charge if charge else accounts.add_funds
        try:
            await send(account_id, (500 if charge else 40) * number, command_id=f"c{number}",
                       description=f"#{number}")
        except Exception as error:  # noqa: BLE001 - a decline is part of the mix
            assert type(error).__name__ == "InsufficientFunds", error
    histories = await all_runs(client, handle)
    stored = await fetch_stored(pool, account_id)

    carried = [_carried_state(history) for history in histories[1:]]
    assert len(carried) >= 2, "the account should have continued as new"
    assert any(state["recent_outcomes"] for state in carried), "declines should be remembered"
    for state_json in carried:
        version = state_json["version"]
        folded = fold(AccountState(account_id), [row.event() for row in stored[:version]])
        assert state_json == as_json(folded)
        async with pool.connection() as conn:
            await snapshots.write_fresh(conn, folded)
        assert await snapshot_row(pool, account_id) == (version, state_json)
        assert STATE.validate_python(state_json) == folded


def _carried_state(history) -> Any:
    """The ``snapshot`` in the start input of a run that continued from another."""
    start = history.events[0]
    assert start.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    payload = start.workflow_execution_started_event_attributes.input.payloads[0]
    return json.loads(payload.data)["snapshot"]
