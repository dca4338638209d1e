"""``AccountWorkflow`` on a real Temporal dev server with a real Postgres event store.

Each test has its own task queue, database and account id. Waiting is bounded polling of the
``state`` query (``wait_settled``), never a sleep.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from activities.contracts import LoadAccount
from activities.event_store import EventStore
from client import AccountClient, AccountClosedError
from domain.account import CLOSED_REASON
from domain.events import FundsAdded
from domain.state import AccountStatus
from tests.integration.helpers import (
    append_request,
    assert_no_failed_workflow_tasks,
    count_events,
    fetch_account_row,
    fetch_events,
    fetch_stored,
    history_events,
    new_account_id,
    scheduled_activities,
    start_account,
    update,
    wait_settled,
    workflow_result,
)
from worker import build_worker
from workflows.interface import (
    WORKFLOW_TYPE,
    AccountView,
    AccountWorkflowInput,
    CommandOutcome,
    OpenOutcome,
    workflow_id,
)


def fund(command_id: str, amount: Any, **extra) -> dict:
    """A money command's payload; ``amount`` may be anything, to build malformed ones too."""
    return {"command_id": command_id, "amount": amount, **extra}


charge = fund


async def update_error(handle, name: str, payload, **options) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await update(handle, name, payload, **options)
    assert isinstance(info.value.cause, ApplicationError), info.value.cause
    return info.value.cause


# --- open and query ---------------------------------------------------------------------------

async def test_start_opens_the_account_and_the_state_query_describes_it(client, task_queue, worker, pool):
    account = new_account_id()
    handle = await client.start_workflow(
        WORKFLOW_TYPE, AccountWorkflowInput(account_id=account, currency="JPY", overdraft_limit=500),
        id=workflow_id(account), task_queue=task_queue)

    opened = await update(handle, "opened", result_type=OpenOutcome)

    expected = AccountView(account_id=account, currency="JPY", balance=0, version=1,
                           status=AccountStatus.OPEN, overdraft_limit=500, pending_commands=0)
    assert opened == OpenOutcome(created=True, account=expected)
    assert await handle.query("state", result_type=AccountView) == expected
    [row] = await fetch_stored(pool, account)
    assert (row.version, row.event_type, row.schema_version) == (1, "ACCOUNT_CREATED", 2)
    opened_at = datetime.fromisoformat(row.payload.pop("opened_at"))  # the workflow's clock
    assert row.payload == {"account_id": account, "currency": "JPY", "overdraft_limit": 500,
                           "billing_period": "monthly"}
    assert abs(opened_at - row.recorded_at) < timedelta(minutes=1)
    account_row = await fetch_account_row(pool, account)
    assert (account_row["currency"], account_row["version"], account_row["overdraft_limit"]) == (
        "JPY", 1, 500)


# --- ordering, outcomes, declines ---------------------------------------------------------------

async def test_a_burst_of_signals_is_applied_in_arrival_order(client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)

    await handle.signal("add_funds", fund("f1", 100))
    await handle.signal("charge", charge("c1", 100))
    await handle.signal("charge", charge("c2", 1))
    await handle.signal("add_funds", fund("f2", 7))
    await handle.signal("charge", charge("c3", 5))
    view = await wait_settled(handle, version=6)

    assert view.balance == 2
    rows = await fetch_events(pool, account)
    assert [(r.version, r.event_type, r.command_id) for r in rows] == [
        (1, "ACCOUNT_CREATED", None), (2, "FUND_ADDED", "f1"), (3, "CHARGE_APPLIED", "c1"),
        (4, "CHARGE_DECLINED", "c2"), (5, "FUND_ADDED", "f2"), (6, "CHARGE_APPLIED", "c3")]
    assert rows[3].payload["balance"] == 0
    account_row = await fetch_account_row(pool, account)
    assert (account_row["balance"], account_row["version"]) == (2, 6)
    await assert_no_failed_workflow_tasks(handle)


async def test_updates_answer_with_the_outcome(client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)

    funded = await update(handle, "add_funds", fund("f1", 1000, description="salary"))
    charged = await update(handle, "charge", charge("c1", 250))

    assert funded == CommandOutcome(command_id="f1", status="applied", balance=1000, version=2)
    assert charged == CommandOutcome(command_id="c1", status="applied", balance=750, version=3)
    rows = await fetch_events(pool, account)
    assert rows[1].payload == {"amount": 1000, "description": "salary"}


async def test_a_declined_charge_is_recorded_and_the_update_fails_with_insufficient_funds(
        client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account, overdraft_limit=50)
    await update(handle, "add_funds", fund("f1", 100))

    error = await update_error(handle, "charge", charge("c1", 151))

    assert error.type == "InsufficientFunds" and error.non_retryable
    assert "insufficient funds" in error.message
    rows = await fetch_events(pool, account)
    assert (rows[-1].version, rows[-1].event_type, rows[-1].command_id) == (3, "CHARGE_DECLINED", "c1")
    assert rows[-1].payload["amount"] == 151 and rows[-1].payload["balance"] == 100
    # exactly at the overdraft boundary is fine
    outcome = await update(handle, "charge", charge("c2", 150))
    assert (outcome.status, outcome.balance, outcome.version) == ("applied", -50, 4)


# --- duplicates -------------------------------------------------------------------------------

async def test_the_same_signal_twice_is_applied_once(client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)

    await handle.signal("add_funds", fund("f1", 100))
    await handle.signal("add_funds", fund("f1", 100))
    await handle.signal("charge", charge("c1", 30))
    await handle.signal("charge", charge("c1", 30))
    await handle.signal("add_funds", fund("f2", 1))
    view = await wait_settled(handle, version=4)

    assert view.balance == 71
    assert [r.command_id for r in await fetch_events(pool, account)] == [None, "f1", "c1", "f2"]


async def test_an_update_repeating_a_signal_is_reported_as_a_duplicate(client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)
    await handle.signal("add_funds", fund("f1", 100))
    await handle.signal("charge", charge("c1", 30))
    await wait_settled(handle, version=3)

    again = await update(handle, "charge", charge("c1", 30))
    again_fund = await update(handle, "add_funds", fund("f1", 100))

    assert again == CommandOutcome(command_id="c1", status="duplicate", balance=70, version=3,
                                   original_status="applied")
    assert again_fund == CommandOutcome(command_id="f1", status="duplicate", balance=70, version=2,
                                        original_status="applied")
    assert await count_events(pool, account) == 3


async def test_a_retried_declined_charge_learns_it_was_declined(client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)
    await handle.signal("charge", charge("big", 500))  # declined: the caller never saw why
    await wait_settled(handle, version=2)

    again = await update(handle, "charge", charge("big", 500))

    assert again.status == "duplicate" and again.original_status == "declined"
    assert again.reason.startswith("insufficient funds") and again.version == 2
    assert await count_events(pool, account) == 2


# --- malformed input --------------------------------------------------------------------------

MALFORMED_SIGNALS = [
    # (signal, args, the field or phrase the reason must name)
    ("charge", [charge("m1", -5)], "amount"),
    ("charge", [charge("m2", 0)], "amount"),
    ("charge", [charge("m3", 1.5)], "amount"),
    ("add_funds", [fund("m4", "10")], "amount"),
    ("add_funds", [fund("m5", True)], "amount"),
    ("add_funds", [{"amount": 5}], "command_id"),
    ("add_funds", [fund("x" * 129, 5)], "command_id"),
    ("charge", [charge("m8", 5, colour="red")], "colour"),
    ("charge", ["charge 5 please"], "expected a JSON object"),
    ("add_funds", [[fund("m10", 5)]], "expected a JSON object"),
    ("charge", [], "got 0"),
    ("add_funds", [fund("m12", 5), fund("m13", 5)], "got 2"),
]


async def test_malformed_signals_are_recorded_as_rejections_and_the_workflow_keeps_working(
        client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)
    await handle.signal("add_funds", fund("f1", 100))
    for name, args, _ in MALFORMED_SIGNALS:
        await handle.signal(name, args=args)
    await handle.signal("charge", charge("c1", 40))
    view = await wait_settled(handle, version=3 + len(MALFORMED_SIGNALS))

    assert view.balance == 60 and view.status == AccountStatus.OPEN
    rows = await fetch_events(pool, account)
    rejected = rows[2:-1]
    assert [r.event_type for r in rejected] == ["COMMAND_REJECTED"] * len(MALFORMED_SIGNALS)
    assert [r.command_id for r in rejected] == [None] * len(MALFORMED_SIGNALS)
    for row, (name, _, named) in zip(rejected, MALFORMED_SIGNALS, strict=False):
        assert row.payload["command"] == name
        assert named in row.payload["reason"], row.payload
    assert (rows[-1].event_type, rows[-1].command_id) == ("CHARGE_APPLIED", "c1")
    await assert_no_failed_workflow_tasks(handle)


async def test_a_corrected_retry_of_a_malformed_signal_is_applied(client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)

    await handle.signal("add_funds", fund("f1", -100))
    await handle.signal("add_funds", fund("f1", 100.0))
    await handle.signal("add_funds", fund("f1", 100))
    view = await wait_settled(handle, version=4)

    assert view.balance == 100
    assert [(r.event_type, r.command_id) for r in await fetch_events(pool, account)] == [
        ("ACCOUNT_CREATED", None), ("COMMAND_REJECTED", None), ("COMMAND_REJECTED", None),
        ("FUND_ADDED", "f1")]


BAD_UPDATES = [
    charge("u1", -5), charge("u2", 0), charge("u3", 2.5), charge("u4", "5"), charge("u5", False),
    {"amount": 5}, charge("", 5), charge("u8", 5, extra=1), "charge 5", None, [charge("u9", 5)],
    charge("u10", 5, description="d" * 501),
]


async def test_the_update_validator_refuses_malformed_input_before_it_enters_history(
        client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)
    await update(handle, "add_funds", fund("f1", 100))
    events_before = await count_events(pool, account)

    for index, payload in enumerate(BAD_UPDATES):
        error = await update_error(handle, "charge", payload, id=f"bad-{index}")
        assert error.type == "InvalidCommand" and error.non_retryable, payload
    error = await update_error(handle, "add_funds", fund("f2", -1), id="bad-fund")
    assert error.type == "InvalidCommand" and "amount" in error.message

    assert await count_events(pool, account) == events_before
    accepted = await history_events(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
    accepted_ids = {e.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
                    for e in accepted}
    assert not any(update_id.startswith("bad-") for update_id in accepted_ids)
    assert len(accepted) == 2  # "opened" and the funding
    # the malformed attempts did not use up the command ids
    outcome = await update(handle, "charge", charge("u1", 5))
    assert (outcome.status, outcome.balance, outcome.version) == ("applied", 95, 3)


# --- close ------------------------------------------------------------------------------------

async def test_after_close_every_command_is_rejected_and_the_run_ends(client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)
    await handle.signal("add_funds", fund("f1", 100))
    await handle.signal("charge", charge("c0", 100))
    await handle.signal("close", {"command_id": "bye", "reason": "customer left"})
    await handle.signal("add_funds", fund("f2", 5))
    await workflow_result(handle)  # closed, drained, its final invoice made: the run ends

    rows = await fetch_events(pool, account)
    assert [(r.event_type, r.command_id) for r in rows[1:4]] == [
        ("FUND_ADDED", "f1"), ("CHARGE_APPLIED", "c0"), ("ACCOUNT_CLOSED", "bye")]
    assert rows[3].payload == {"reason": "customer left"}
    # f2 may come in the close's batch or after it; the final invoice follows the close either way
    assert sorted((r.event_type, r.command_id) for r in rows[4:]) == [
        ("COMMAND_REJECTED", "f2"), ("INVOICE_DRAFTED", "invoice-1-drafted"),
        ("INVOICE_FINALIZED", "invoice-1-finalized")]
    assert next(r for r in rows if r.command_id == "f2").payload["reason"] == CLOSED_REASON
    with pytest.raises(AccountClosedError):  # a later command revives the run, which says so
        await AccountClient(client, task_queue, rpc_timeout=10).charge(account, 5, command_id="c1")
    rows = await fetch_events(pool, account)
    assert (rows[-1].event_type, rows[-1].command_id, len(rows)) == ("COMMAND_REJECTED", "c1", 8)
    assert (await fetch_account_row(pool, account))["status"] == "closed"


@pytest.mark.parametrize("args", [[], [None]], ids=["none", "null (as Go sends none)"])
async def test_a_close_without_arguments_gets_a_command_id(client, task_queue, worker, pool, args):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)

    await handle.signal("close", args=args)
    await workflow_result(handle)

    [_, closed, drafted, finalized] = await fetch_events(pool, account)
    assert closed.event_type == "ACCOUNT_CLOSED" and closed.command_id.startswith("close-")
    assert (drafted.event_type, finalized.event_type) == ("INVOICE_DRAFTED", "INVOICE_FINALIZED")


# --- batching ---------------------------------------------------------------------------------

async def test_signals_waiting_for_the_worker_are_applied_in_batches(client, task_queue, pool):
    account = new_account_id()
    handle = await client.start_workflow(
        WORKFLOW_TYPE, AccountWorkflowInput(account_id=account, currency="USD", max_batch=10),
        id=workflow_id(account), task_queue=task_queue)
    for index in range(50):
        await handle.signal("add_funds", fund(f"f{index}", index + 1))

    async with build_worker(client, pool, task_queue):
        view = await wait_settled(handle, version=51)

    assert view.balance == sum(range(1, 51))
    # one append to open the account, then five batches of max_batch=10 commands
    assert await scheduled_activities(handle, "append_events") == 6
    assert [r.command_id for r in (await fetch_events(pool, account))[1:]] == [
        f"f{index}" for index in range(50)]


async def test_a_live_burst_is_batched(client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)
    appends_before = await scheduled_activities(handle, "append_events")

    await asyncio.gather(*(handle.signal("add_funds", fund(f"f{i}", 1)) for i in range(50)))
    view = await wait_settled(handle, version=51)

    assert view.balance == 50
    appends = await scheduled_activities(handle, "append_events") - appends_before
    assert 1 <= appends < 25, appends


# --- continue-as-new --------------------------------------------------------------------------

async def test_continue_as_new_keeps_state_and_deduplication(client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account, history_budget=20)
    first_run = handle.result_run_id

    for index in range(30):
        await handle.signal("add_funds", fund(f"f{index}", 1))
    await wait_settled(handle, version=31)
    assert (await handle.describe()).run_id != first_run
    # re-send early ids after the boundary, mixed with new commands and updates
    for index in range(30):
        if index % 3 == 0:
            await handle.signal("add_funds", fund(f"f{index}", 1))
        else:
            await handle.signal("charge", charge(f"c{index}", 1))
    duplicate = await update(handle, "add_funds", fund("f1", 1))
    applied = await update(handle, "add_funds", fund("last", 5))

    view = await wait_settled(handle, version=52)
    assert duplicate.status == "duplicate" and duplicate.version == 3
    assert applied == CommandOutcome(command_id="last", status="applied", balance=15, version=52)
    assert view.balance == 15  # 30 funds - 20 charges + 5
    rows = await fetch_events(pool, account)
    assert [r.version for r in rows] == list(range(1, 53))
    assert sum(r.event_type == "FUND_ADDED" for r in rows) == 31
    first = client.get_workflow_handle(handle.id, run_id=first_run)
    assert len(await history_events(
        first, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW)) == 1
    await assert_no_failed_workflow_tasks(handle)


# --- rebuilding from the log --------------------------------------------------------------------

async def test_a_restarted_workflow_rebuilds_the_account_from_the_log(client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account, overdraft_limit=20)
    await handle.signal("add_funds", fund("f1", 100))
    await handle.signal("charge", charge("c1", 30))
    await handle.signal("charge", charge("c2", 500))
    await handle.signal("charge", ["malformed"])
    before = await wait_settled(handle, version=5)

    await handle.terminate(reason="test: rebuild from the log")
    restarted = await client.start_workflow(
        WORKFLOW_TYPE, AccountWorkflowInput(account_id=account, currency="USD", overdraft_limit=20),
        id=workflow_id(account), task_queue=task_queue)
    opened = await update(restarted, "opened", result_type=OpenOutcome)

    assert opened == OpenOutcome(created=False, account=before)
    assert await restarted.query("state", result_type=AccountView) == before
    # the rebuilt state still knows the recorded command ids, declined ones included
    again = await update(restarted, "charge", charge("c2", 500))
    assert (again.status, again.version) == ("duplicate", 4)
    outcome = await update(restarted, "charge", charge("c3", 90))
    assert outcome == CommandOutcome(command_id="c3", status="applied", balance=-20, version=6)
    rows = await fetch_events(pool, account)
    assert [r.version for r in rows] == list(range(1, 7))
    assert sum(r.event_type == "ACCOUNT_CREATED" for r in rows) == 1


@pytest.mark.parametrize("local_activities", [True, False], ids=["local", "regular"])
async def test_a_command_recorded_behind_the_workflows_back_is_not_applied_twice(
        client, task_queue, worker, pool, local_activities):
    account = new_account_id()
    handle = await start_account(client, task_queue, account, local_activities=local_activities)
    await handle.signal("add_funds", fund("f1", 100))
    await wait_settled(handle, version=2)
    # another writer records "old-1" at version 3, under an id of its own; the workflow still
    # believes it is at 2 (with the workflow's own id it would be the workflow's write exactly)
    store = EventStore(pool)
    state = await store.load_account(LoadAccount(account_id=account))
    request = append_request(state, [FundsAdded(command_id="old-1", amount=50)])
    foreign = [event.model_copy(update={"event_id": uuid.uuid4()}) for event in request.events]
    await store.append_events(request.model_copy(update={"events": foreign}))

    await handle.signal("add_funds", fund("old-1", 50))
    view = await wait_settled(handle, version=3)
    assert view.balance == 150
    outcome = await update(handle, "add_funds", fund("f2", 1))

    assert outcome == CommandOutcome(command_id="f2", status="applied", balance=151, version=4)
    assert [r.command_id for r in await fetch_events(pool, account)] == [None, "f1", "old-1", "f2"]
    assert (await fetch_account_row(pool, account))["balance"] == 151
    # the conflict made the workflow reload the log
    assert await scheduled_activities(handle, "load_account") == 2


async def test_a_command_older_than_the_workflows_memory_is_caught_by_postgres(
        client, task_queue, worker, pool):
    account = new_account_id()
    old = 2_001  # one more than COMMANDS_KEPT: "old-1" falls out of the folded memory
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO account_events (event_id, account_id, version, event_type, payload)"
            " VALUES (gen_random_uuid(), %s, 1, 'ACCOUNT_CREATED',"
            " jsonb_build_object('account_id', %s::text, 'currency', 'USD', 'overdraft_limit', 0))",
            (account, account))
        await conn.execute(
            "INSERT INTO account_events (event_id, account_id, version, event_type, payload, command_id)"
            " SELECT gen_random_uuid(), %s, n + 1, 'FUND_ADDED',"
            " '{\"amount\": 1, \"description\": \"\"}', 'old-' || n FROM generate_series(1, %s) n",
            (account, old))
        await conn.execute(
            "INSERT INTO accounts (account_id, currency, balance, version) VALUES (%s, 'USD', %s, %s)",
            (account, old, old + 1))
    handle = await start_account(client, task_queue, account)

    forgotten = await update(handle, "add_funds", fund("old-1", 1))
    remembered = await update(handle, "add_funds", fund(f"old-{old}", 1))
    fresh = await update(handle, "add_funds", fund("new", 1))

    assert forgotten == CommandOutcome(command_id="old-1", status="duplicate", balance=old, version=2,
                                       original_status="applied")  # the log says what it was
    assert remembered.status == "duplicate" and remembered.version == old + 1
    assert fresh == CommandOutcome(command_id="new", status="applied", balance=old + 1,
                                   version=old + 2)
    assert await count_events(pool, account) == old + 2


# --- bad start input --------------------------------------------------------------------------

@pytest.mark.parametrize("account_id, currency", [
    ("bad id {}", "USD"), ("'; DROP TABLE accounts; --{}", "USD"), ("ok-{}", "usd"), ("ok-{}", "XAU"),
])
async def test_an_invalid_start_input_fails_the_run(client, task_queue, worker, pool,
                                                     account_id, currency):
    account = account_id.format(uuid.uuid4().hex[:8])
    handle = await client.start_workflow(
        WORKFLOW_TYPE, AccountWorkflowInput(account_id=account, currency=currency),
        id=workflow_id(account), task_queue=task_queue)

    with pytest.raises(WorkflowFailureError) as info:
        await workflow_result(handle)

    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidAccount" and cause.non_retryable
    assert ("account_id" if currency == "USD" else "currency") in cause.message
    assert await count_events(pool) == 0


# --- determinism ------------------------------------------------------------------------------

async def test_every_workflow_task_replays_the_whole_history_without_divergence(
        client: Client, task_queue, pool):
    account = new_account_id()
    async with build_worker(client, pool, task_queue, max_cached_workflows=0):
        handle = await start_account(client, task_queue, account, overdraft_limit=10)
        await handle.signal("add_funds", fund("f1", 100))
        await handle.signal("charge", charge("bad", -1))
        await handle.signal("charge", charge("c1", 200))
        outcome = await update(handle, "charge", charge("c2", 110))
        duplicate = await update(handle, "add_funds", fund("f1", 100))
        await handle.signal("close", {"command_id": "bye-0"})  # refused: the balance is -10
        await handle.signal("close", {"command_id": "bye", "payout": True, "reason": "written off"})
        await workflow_result(handle)
        view = await handle.query("state", result_type=AccountView)  # replayed to its end

    assert outcome == CommandOutcome(command_id="c2", status="applied", balance=-10, version=5)
    assert duplicate.status == "duplicate" and duplicate.version == 2
    assert (view.balance, view.status, view.version) == (0, AccountStatus.CLOSED, 10)
    assert [r.event_type for r in await fetch_events(pool, account)] == [
        "ACCOUNT_CREATED", "FUND_ADDED", "COMMAND_REJECTED", "CHARGE_DECLINED", "CHARGE_APPLIED",
        "COMMAND_REJECTED", "BALANCE_PAID_OUT", "ACCOUNT_CLOSED", "INVOICE_DRAFTED", "INVOICE_FINALIZED"]
    await assert_no_failed_workflow_tasks(handle)


# --- characters Postgres cannot store ---------------------------------------------------------

async def test_control_characters_in_a_signal_are_rejected_and_do_not_block_the_account(
        client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)

    await handle.signal("add_funds", fund("a\x00b", 5))
    await handle.signal("add_funds", fund("c", 5, description="x\x00y"))
    await handle.signal("add_funds", fund("f1", 100))
    view = await wait_settled(handle, version=4)

    assert view.balance == 100
    rows = await fetch_events(pool, account)
    assert [(r.event_type, r.command_id) for r in rows] == [
        ("ACCOUNT_CREATED", None), ("COMMAND_REJECTED", None), ("COMMAND_REJECTED", None),
        ("FUND_ADDED", "f1")]
    assert rows[1].payload["reason"].startswith("command_id: ")
    assert rows[2].payload["reason"].startswith("description: ")


async def test_a_nul_character_in_an_unknown_field_name_does_not_block_the_account(
        client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)

    await handle.signal("add_funds", {"command_id": "c", "amount": 5, "x\x00": 1})
    await handle.signal("add_funds", fund("f1", 100))
    view = await wait_settled(handle, version=3, timeout=3.0)  # settles in well under 1 s when fixed

    assert view.balance == 100
    assert [r.event_type for r in await fetch_events(pool, account)] == [
        "ACCOUNT_CREATED", "COMMAND_REJECTED", "FUND_ADDED"]


async def test_a_missing_projection_row_does_not_livelock_the_workflow(client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)
    await handle.signal("add_funds", fund("f1", 100))
    await wait_settled(handle, version=2)
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM accounts WHERE account_id = %s", (account,))
    try:
        await handle.signal("add_funds", fund("f2", 1))
        view = await wait_settled(handle, version=3, timeout=3.0)  # well under 1 s when fixed
        assert view.balance == 101
        assert await scheduled_activities(handle, "load_account") <= 2
    finally:
        await handle.terminate(reason="test over")  # stop the retry loop either way
