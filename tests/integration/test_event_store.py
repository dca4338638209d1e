"""The event-store activities and the schema's own guards, against a real Postgres.

The activities are called directly as methods of ``EventStore``; each test has its own database.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from psycopg import errors
from temporalio.exceptions import ApplicationError

from activities.contracts import VERSION_CONFLICT, AppendResult, LoadAccount, RecordedCommand
from activities.event_store import EventStore
from activities.rows import CORRUPT_LOG
from domain.events import AccountClosed, ChargeApplied, ChargeDeclined, CommandRejected, FundsAdded
from domain.memory import CommandMemory, PriorOutcome, Recorded
from domain.state import AccountState, AccountStatus
from tests.integration.helpers import (
    append_request,
    count_events,
    created,
    fetch_account_row,
    fetch_events,
    fetch_stored,
    fold,
)

ACCOUNT = "acc-1"
EMPTY = AccountState(account_id=ACCOUNT)


@pytest.fixture
def store(worker_pool) -> EventStore:
    return EventStore(worker_pool)


async def open_with(store: EventStore, *events, account_id: str = ACCOUNT, overdraft_limit: int = 0
                    ) -> AccountState:
    """Create the account with ``events`` after its ACCOUNT_CREATED; return the state after them."""
    empty = AccountState(account_id=account_id)
    log = [created(account_id, overdraft_limit=overdraft_limit), *events]
    result = await store.append_events(append_request(empty, log))
    assert result == AppendResult(appended=True, version=len(log))
    return fold(empty, log)


async def execute(pool, query: str, params=None):
    async with pool.connection() as conn:
        await conn.execute(query, params)


# --- append -----------------------------------------------------------------------------------

async def test_append_to_a_new_account_creates_the_row_and_numbered_events(store, pool):
    log = [created(ACCOUNT, overdraft_limit=25), FundsAdded(command_id="c1", amount=100),
           ChargeApplied(command_id="c2", amount=30, description="coffee")]
    request = append_request(EMPTY, log)

    result = await store.append_events(request)

    assert result == AppendResult(appended=True, version=3, already_recorded={})
    row = await fetch_account_row(pool, ACCOUNT)
    assert {k: row[k] for k in ("currency", "balance", "version", "status", "overdraft_limit")} == {
        "currency": "USD", "balance": 70, "version": 3, "status": "open", "overdraft_limit": 25}
    rows = await fetch_events(pool, ACCOUNT)
    assert [(r.version, r.event_type, r.command_id) for r in rows] == [
        (1, "ACCOUNT_CREATED", None), (2, "FUND_ADDED", "c1"), (3, "CHARGE_APPLIED", "c2")]
    assert [r.payload for r in rows] == [
        {"account_id": ACCOUNT, "currency": "USD", "overdraft_limit": 25, "billing_period": "monthly",
         "opened_at": None},
        {"amount": 100, "description": ""},
        {"amount": 30, "description": "coffee"},
    ]
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT event_id FROM account_events WHERE account_id = %s ORDER BY version", (ACCOUNT,))
        assert [event_id for (event_id,) in await cursor.fetchall()] == [
            new.event_id for new in request.events]


async def test_append_to_an_existing_account_continues_its_versions(store, pool):
    state = await open_with(store, FundsAdded(command_id="c1", amount=100))

    result = await store.append_events(append_request(state, [
        ChargeApplied(command_id="c2", amount=40), AccountClosed(command_id="c3")]))

    assert result == AppendResult(appended=True, version=4)
    assert [(r.version, r.event_type) for r in await fetch_events(pool, ACCOUNT)] == [
        (1, "ACCOUNT_CREATED"), (2, "FUND_ADDED"), (3, "CHARGE_APPLIED"), (4, "ACCOUNT_CLOSED")]
    row = await fetch_account_row(pool, ACCOUNT)
    assert (row["balance"], row["version"], row["status"]) == (60, 4, "closed")


@pytest.mark.parametrize("existing", [False, True], ids=["new-account", "existing-account"])
async def test_a_retry_after_commit_returns_the_same_result_and_writes_nothing(store, pool, existing):
    state = await open_with(store, FundsAdded(command_id="c1", amount=100)) if existing else EMPTY
    events = [FundsAdded(command_id="c2", amount=5)]
    request = append_request(state, [created(ACCOUNT), *events] if not existing else events)
    first = await store.append_events(request)
    events_before, row_before = await count_events(pool), await fetch_account_row(pool, ACCOUNT)

    again = await store.append_events(request)

    assert again == first and first.appended
    assert await count_events(pool) == events_before
    assert await fetch_account_row(pool, ACCOUNT) == row_before  # updated_at too: not rewritten


async def test_a_retried_batch_that_grew_appends_only_what_is_new(store, pool):
    """A workflow task appended c1 and was refused; its retry met c2 as well and sends both."""
    state = await open_with(store)
    await store.append_events(append_request(state, [FundsAdded(command_id="c1", amount=5)]))

    retry = append_request(state, [FundsAdded(command_id="c1", amount=5),
                                   FundsAdded(command_id="c2", amount=7)])
    result = await store.append_events(retry)

    assert result == AppendResult(appended=True, version=3)
    assert [(r.version, r.command_id) for r in await fetch_events(pool, ACCOUNT)] == [
        (1, None), (2, "c1"), (3, "c2")]
    assert (await fetch_account_row(pool, ACCOUNT))["balance"] == 12


async def test_a_retried_batch_that_met_another_command_first_is_a_conflict(store, pool):
    """The retry decided c2 before c1: version 2 holds c1 already, so it must reload."""
    state = await open_with(store)
    await store.append_events(append_request(state, [FundsAdded(command_id="c1", amount=5)]))

    retry = append_request(state, [FundsAdded(command_id="c2", amount=7),
                                   FundsAdded(command_id="c1", amount=5)])
    with pytest.raises(ApplicationError) as conflict:
        await store.append_events(retry)

    assert conflict.value.type == VERSION_CONFLICT
    assert [(r.version, r.command_id) for r in await fetch_events(pool, ACCOUNT)] == [
        (1, None), (2, "c1")]


@pytest.mark.parametrize("expected_version", [0, 1, 2, 4])
async def test_a_stale_or_future_expected_version_is_a_non_retryable_conflict(
        store, pool, expected_version):
    await open_with(store, FundsAdded(command_id="c1", amount=100),
                    ChargeApplied(command_id="c2", amount=1))
    stale = AccountState(account_id=ACCOUNT, currency="USD", version=expected_version)
    request = append_request(stale, [FundsAdded(command_id="c9", amount=5)])

    with pytest.raises(ApplicationError) as info:
        await store.append_events(request)

    assert info.value.type == VERSION_CONFLICT and info.value.non_retryable
    assert info.value.details == ({"expected_version": expected_version, "actual_version": 3},)
    assert await count_events(pool) == 3
    row = await fetch_account_row(pool, ACCOUNT)
    assert (row["version"], row["balance"]) == (3, 99)


async def test_appending_after_version_zero_of_an_unknown_account_is_a_conflict(store, pool):
    request = append_request(AccountState(account_id=ACCOUNT, currency="USD", version=2),
                             [FundsAdded(command_id="c1", amount=5)])
    with pytest.raises(ApplicationError) as info:
        await store.append_events(request)
    assert info.value.type == VERSION_CONFLICT
    assert info.value.details == ({"expected_version": 2, "actual_version": None},)
    assert await count_events(pool) == 0


async def test_a_command_id_already_in_the_log_is_reported_and_nothing_is_written(store, pool):
    state = await open_with(store, FundsAdded(command_id="old-1", amount=100, command_fingerprint="f1"),
                            ChargeDeclined(command_id="old-2", amount=500, reason="no", balance=100))
    # a writer whose memory has forgotten old-1 and old-2
    forgetful = state._replace(recent_commands=CommandMemory())
    request = append_request(forgetful, [FundsAdded(command_id="new", amount=5),
                                         FundsAdded(command_id="old-1", amount=100),
                                         ChargeApplied(command_id="old-2", amount=10),
                                         CommandRejected(command="charge", reason="bad")])

    result = await store.append_events(request)

    assert result == AppendResult(
        appended=False, version=3, already_recorded={"old-1": 2, "old-2": 3},
        recorded={"old-1": RecordedCommand(version=2, event_type="FUND_ADDED", fingerprint="f1"),
                  "old-2": RecordedCommand(version=3, event_type="CHARGE_DECLINED", reason="no")})
    assert result.known_commands() == {"old-1": Recorded(2, None, "f1"),
                                       "old-2": Recorded(3, PriorOutcome("declined", "no"))}
    assert await count_events(pool) == 3
    row = await fetch_account_row(pool, ACCOUNT)
    assert (row["version"], row["balance"]) == (3, 100)


async def test_concurrent_appends_at_the_same_version_let_exactly_one_win(store, pool):
    state = await open_with(store, FundsAdded(command_id="c0", amount=100))
    requests = [append_request(state, [ChargeApplied(command_id=f"c{i}", amount=60)])
                for i in (1, 2)]

    results = await asyncio.gather(*(store.append_events(r) for r in requests),
                                   return_exceptions=True)

    wins = [r for r in results if isinstance(r, AppendResult)]
    conflicts = [r for r in results if isinstance(r, ApplicationError) and r.type == VERSION_CONFLICT]
    assert (len(wins), len(conflicts)) == (1, 1), results
    assert wins[0] == AppendResult(appended=True, version=3)
    row = await fetch_account_row(pool, ACCOUNT)
    assert (row["version"], row["balance"]) == (3, 40)
    assert await count_events(pool) == 3


async def test_concurrent_creates_of_one_account_let_exactly_one_win(store, pool):
    requests = [append_request(EMPTY, [created(ACCOUNT, currency=c)]) for c in ("USD", "EUR")]
    results = await asyncio.gather(*(store.append_events(r) for r in requests),
                                   return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["AppendResult", "ApplicationError"], results
    assert await count_events(pool) == 1


async def test_an_append_that_breaks_the_overdraft_check_writes_nothing(store, pool):
    state = await open_with(store, FundsAdded(command_id="c1", amount=10), overdraft_limit=5)
    request = append_request(state, [ChargeApplied(command_id="c2", amount=16)])  # -6 < -5

    with pytest.raises(errors.CheckViolation):
        await store.append_events(request)

    assert await count_events(pool) == 2
    assert (await fetch_account_row(pool, ACCOUNT))["balance"] == 10


# --- load -------------------------------------------------------------------------------------

async def test_load_folds_every_event_type_back_into_the_same_state(store, pool):
    log = [FundsAdded(command_id="f1", amount=100, description="salary"),
           ChargeApplied(command_id="c1", amount=30),
           ChargeDeclined(command_id="c2", amount=500, reason="insufficient funds", balance=70),
           CommandRejected(command="charge", reason="amount: too small", received='{"amount": 0}'),
           CommandRejected(command_id="c3", command="add_funds", reason="account is closed"),
           AccountClosed(command_id="x", reason="bye")]
    state = await open_with(store, *log, overdraft_limit=9)

    loaded = await store.load_account(LoadAccount(account_id=ACCOUNT))

    assert loaded == state
    assert (loaded.balance, loaded.version, loaded.status, loaded.overdraft_limit) == (
        70, 7, AccountStatus.CLOSED, 9)
    assert loaded.recent_commands == {"f1": 2, "c1": 3, "c2": 4, "c3": 6, "x": 7}
    rows = await fetch_stored(pool, ACCOUNT)
    assert [row.event() for row in rows[1:]] == log


async def test_load_of_an_unknown_account_is_the_empty_state(store):
    loaded = await store.load_account(LoadAccount(account_id="nobody"))
    assert loaded == AccountState(account_id="nobody")
    assert not loaded.exists


async def test_load_reads_only_its_own_account(store):
    mine = await open_with(store, FundsAdded(command_id="c1", amount=7))
    await open_with(store, FundsAdded(command_id="c1", amount=1000), account_id="other")
    assert await store.load_account(LoadAccount(account_id=ACCOUNT)) == mine


async def test_deleting_the_projection_row_leaves_the_log_intact(store, pool):
    state = await open_with(store, FundsAdded(command_id="c1", amount=100))

    await execute(pool, "DELETE FROM accounts WHERE account_id = %s", (ACCOUNT,))

    assert await fetch_account_row(pool, ACCOUNT) is None
    assert await count_events(pool, ACCOUNT) == 2
    assert await store.load_account(LoadAccount(account_id=ACCOUNT)) == state


async def test_an_append_after_the_projection_row_was_deleted_restores_it(store, pool):
    await open_with(store, FundsAdded(command_id="c1", amount=100))
    await execute(pool, "DELETE FROM accounts WHERE account_id = %s", (ACCOUNT,))
    state = await store.load_account(LoadAccount(account_id=ACCOUNT))

    result = await store.append_events(append_request(state, [ChargeApplied(command_id="c2", amount=1)]))

    assert result == AppendResult(appended=True, version=3)
    row = await fetch_account_row(pool, ACCOUNT)
    assert row is not None and (row["balance"], row["version"]) == (99, 3)


async def test_a_gap_in_the_log_is_reported_as_corrupt(store, pool):
    await execute(pool, INSERT_EVENT, (uuid.uuid4(), ACCOUNT, 1, "a"))
    await execute(pool, INSERT_EVENT, (uuid.uuid4(), ACCOUNT, 3, "b"))
    with pytest.raises(ApplicationError) as info:
        await store.load_account(LoadAccount(account_id=ACCOUNT))
    assert info.value.type == CORRUPT_LOG and "version 3 follows 1" in info.value.message


# --- the schema's guards ----------------------------------------------------------------------

@pytest.mark.parametrize("statement", [
    "UPDATE account_events SET payload = '{}'::jsonb",
    "UPDATE account_events SET version = version + 10",
    "DELETE FROM account_events",
    "TRUNCATE account_events",
])
async def test_the_event_log_is_append_only(store, pool, statement):
    await open_with(store, FundsAdded(command_id="c1", amount=100))
    before = await fetch_events(pool, ACCOUNT)

    with pytest.raises(errors.RestrictViolation, match="append-only"):
        await execute(pool, statement)

    assert await fetch_events(pool, ACCOUNT) == before


INSERT_EVENT = (
    "INSERT INTO account_events (event_id, account_id, version, event_type, payload, command_id)"
    " VALUES (%s, %s, %s, 'FUND_ADDED', '{\"amount\": 1, \"description\": \"\"}', %s)"
)


async def test_one_event_per_account_and_version(store, pool):
    await open_with(store, FundsAdded(command_id="c1", amount=100))

    with pytest.raises(errors.UniqueViolation) as info:
        await execute(pool, INSERT_EVENT, (uuid.uuid4(), ACCOUNT, 2, "fresh"))
    assert info.value.diag.constraint_name == "one_event_per_version"
    await execute(pool, INSERT_EVENT, (uuid.uuid4(), "other", 2, "fresh"))  # per account


async def test_one_event_per_account_and_command_id(store, pool):
    await open_with(store, FundsAdded(command_id="c1", amount=100))

    with pytest.raises(errors.UniqueViolation) as info:
        await execute(pool, INSERT_EVENT, (uuid.uuid4(), ACCOUNT, 3, "c1"))
    assert info.value.diag.constraint_name == "one_event_per_command"
    await execute(pool, INSERT_EVENT, (uuid.uuid4(), "other", 3, "c1"))  # per account
    # events without a command id (malformed input) may repeat
    await execute(pool, INSERT_EVENT, (uuid.uuid4(), ACCOUNT, 3, None))
    await execute(pool, INSERT_EVENT, (uuid.uuid4(), ACCOUNT, 4, None))


async def test_event_ids_are_unique(store, pool):
    event_id = uuid.uuid4()
    await execute(pool, INSERT_EVENT, (event_id, ACCOUNT, 1, "a"))
    with pytest.raises(errors.UniqueViolation):
        await execute(pool, INSERT_EVENT, (event_id, "other", 1, "a"))


@pytest.mark.parametrize("column, value", [("version", 0), ("command_id", ""),
                                           ("command_id", "x" * 129)])
async def test_event_column_checks(pool, column, value):
    params = {"version": 1, "command_id": "c1", column: value}
    with pytest.raises(errors.CheckViolation):
        await execute(pool, INSERT_EVENT, (uuid.uuid4(), ACCOUNT, params["version"], params["command_id"]))


async def test_unknown_event_types_are_refused(pool):
    with pytest.raises(errors.CheckViolation):
        await execute(pool, "INSERT INTO account_events (event_id, account_id, version, event_type,"
                            " payload) VALUES (%s, 'a', 1, 'MONEY_PRINTED', '{}')", (uuid.uuid4(),))


async def test_the_balance_cannot_go_below_the_overdraft_limit(store, pool):
    await open_with(store, FundsAdded(command_id="c1", amount=100), overdraft_limit=50)

    await execute(pool, "UPDATE accounts SET balance = -50 WHERE account_id = %s", (ACCOUNT,))
    with pytest.raises(errors.CheckViolation) as info:
        await execute(pool, "UPDATE accounts SET balance = -51 WHERE account_id = %s", (ACCOUNT,))
    assert info.value.diag.constraint_name == "balance_within_overdraft"


@pytest.mark.parametrize("changes", ["currency = 'usd'", "status = 'frozen'", "version = 0",
                                     "overdraft_limit = -1", "account_id = 'bad id'"])
async def test_account_row_checks(store, pool, changes):
    await open_with(store)
    with pytest.raises(errors.CheckViolation):
        await execute(pool, f"UPDATE accounts SET {changes} WHERE account_id = %s", (ACCOUNT,))


async def test_store_exposes_exactly_its_two_activities(store):
    assert sorted(a.__name__ for a in store.activities) == ["append_events", "load_account"]


async def test_a_nul_character_is_refused_by_postgres(store, pool):
    """Documents why the domain must refuse NUL (test_control_characters_are_refused in
    tests/unit/test_model.py):
    Postgres cannot store it, and the error is a plain psycopg error, retried forever."""
    state = await open_with(store)
    with pytest.raises(psycopg.DataError):
        await store.append_events(append_request(state, [FundsAdded(command_id="a\x00b", amount=1)]))
    with pytest.raises(psycopg.DataError):
        await store.append_events(append_request(state, [FundsAdded(command_id="ok", amount=1,
                                                                    description="x\x00")]))
    assert await count_events(pool) == 1
