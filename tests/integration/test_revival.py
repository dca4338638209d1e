"""Accounts whose workflow is gone: revived from the log by the next command, or by ``check
--repair``; a closed account's run ends once drained, and later commands are answered "closed";
closing with a balance needs a payout. Real Temporal dev server and Postgres."""

from __future__ import annotations

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from client import (
    AccountClient,
    AccountClosedError,
    AccountExists,
    AccountHasBalance,
    AccountNotFound,
    CommandRejectedError,
    IdempotencyKeyReused,
)
from domain.commands import AddFunds, Charge
from operations.reconcile import reconcile
from tests.integration.helpers import (
    SETTLE_TIMEOUT,
    assert_no_failed_workflow_tasks,
    count_events,
    fetch_events,
    new_account_id,
    workflow_result,
)
from workflows.interface import WORKFLOW_TYPE, workflow_id


async def status(client: Client, account_id: str) -> WorkflowExecutionStatus | None:
    description = await client.get_workflow_handle(workflow_id(account_id)).describe()
    return description.status


async def terminated(accounts: AccountClient, account_id: str) -> None:
    await accounts.handle(account_id).terminate(reason="test: an operator's mistake")
    assert await status(accounts.temporal, account_id) == WorkflowExecutionStatus.TERMINATED


@pytest.fixture
def accounts(client, task_queue, worker) -> AccountClient:
    return AccountClient(client, task_queue, rpc_timeout=SETTLE_TIMEOUT)


async def test_every_way_of_sending_revives_a_terminated_account(accounts, pool):
    account = new_account_id()
    await accounts.open(account, "USD")
    await accounts.add_funds(account, 1_000, command_id="f-1")

    await terminated(accounts, account)
    applied = await accounts.charge(account, 100, command_id="c-1")  # batched: post_batch update
    await terminated(accounts, account)
    single = await accounts.send_one(account, Charge(command_id="c-2", amount=200))  # charge update
    await terminated(accounts, account)
    await accounts.send_one(account, AddFunds(command_id="f-2", amount=5), wait=False)  # a signal
    view = await accounts.wait_for(account, lambda v: v.version == 5)
    await terminated(accounts, account)
    duplicate = await accounts.send_one(account, Charge(command_id="c-1", amount=100))

    assert (applied.status, applied.balance, applied.version) == ("applied", 900, 3)
    assert (single.status, single.balance, single.version) == ("applied", 700, 4)
    assert view.balance == 705
    assert (duplicate.status, duplicate.version) == ("duplicate", 3)  # the log's memory came back
    assert accounts.revived == 4
    assert await status(accounts.temporal, account) == WorkflowExecutionStatus.RUNNING
    assert [row.command_id for row in await fetch_events(pool, account)] == [
        None, "f-1", "c-1", "c-2", "f-2"]
    await assert_no_failed_workflow_tasks(accounts.handle(account))


async def test_a_raw_signal_with_start_revives_as_another_language_would(accounts, client, task_queue, pool):
    """What a service without our client calls: SignalWithStart, input ``{"account_id": ID,
    "revive": true}`` (the ``start.json`` schema), workflow id ``account-ID``."""
    account = new_account_id()
    await accounts.open(account, "EUR")
    await terminated(accounts, account)

    await client.start_workflow(WORKFLOW_TYPE, {"account_id": account, "revive": True},
                                id=workflow_id(account), task_queue=task_queue,
                                start_signal="add_funds", start_signal_args=[
                                    {"command_id": "raw-1", "amount": 42}])
    view = await accounts.wait_for(account, lambda v: v.version == 2)
    assert (view.balance, view.currency) == (42, "EUR")


async def test_a_command_to_an_account_never_opened_is_not_found_and_leaves_nothing(
        accounts, client, pool):
    ghost = new_account_id()
    with pytest.raises(AccountNotFound):
        await accounts.add_funds(ghost, 5, command_id="g-1")
    with pytest.raises(AccountNotFound):
        await accounts.send_one(ghost, Charge(command_id="g-2", amount=5))
    with pytest.raises(AccountNotFound):
        await accounts.close(ghost, command_id="g-3")
    with pytest.raises(AccountNotFound):  # a signal too: the revival before it learns so
        await accounts.send_one(ghost, AddFunds(command_id="g-4", amount=5), wait=False)
    with pytest.raises(AccountNotFound):
        await accounts.revive(ghost)

    handle = client.get_workflow_handle(workflow_id(ghost))
    await workflow_result(handle)  # the last revived run ended by itself
    assert await status(client, ghost) == WorkflowExecutionStatus.COMPLETED
    assert await count_events(pool, ghost) == 0


async def test_a_closed_account_finishes_and_later_commands_are_answered_closed(accounts, client, pool):
    account = new_account_id()
    await accounts.open(account, "USD")
    await accounts.add_funds(account, 300, command_id="f-1")
    await accounts.charge(account, 300, command_id="c-1")

    closed = await accounts.close(account, command_id="bye", reason="customer left")
    await workflow_result(accounts.handle(account))  # the run ends once drained and billed
    with pytest.raises(AccountClosedError) as later:
        await accounts.add_funds(account, 1, command_id="f-2")
    with pytest.raises(AccountClosedError):
        await accounts.close(account, command_id="bye-2")
    view = await accounts.state(account)  # a finished workflow still answers from its history

    assert closed is not None and (closed.status, closed.balance) == ("applied", 0)
    assert later.value.outcome.status == "rejected"
    assert (view.status, view.balance) == ("closed", 0)
    assert await status(client, account) == WorkflowExecutionStatus.COMPLETED
    types = [(row.event_type, row.command_id) for row in await fetch_events(pool, account)]
    assert types[3] == ("ACCOUNT_CLOSED", "bye")
    assert [t for t, _ in types[4:6]] == ["INVOICE_DRAFTED", "INVOICE_FINALIZED"]  # the last one
    assert types[6:] == [("COMMAND_REJECTED", "f-2"), ("COMMAND_REJECTED", "bye-2")]


async def test_closing_with_a_balance_needs_a_payout(accounts, pool):
    account = new_account_id()
    await accounts.open(account, "USD", overdraft_limit=1_000)
    await accounts.add_funds(account, 1_250, command_id="f-1")

    with pytest.raises(AccountHasBalance) as holding:
        await accounts.close(account, command_id="bye-1")
    with pytest.raises(CommandRejectedError, match="a payout needs a reason"):
        await accounts.close(account, command_id="bye-2", payout=True)
    paid = await accounts.close(account, command_id="bye-3", payout=True, reason="sent by wire")

    assert holding.value.outcome.balance == 1_250 and "1250" in str(holding.value)
    assert paid is not None and (paid.status, paid.balance) == ("applied", 0)
    rows = await fetch_events(pool, account)
    assert [(r.event_type, r.command_id) for r in rows[2:6]] == [
        ("COMMAND_REJECTED", "bye-1"), ("COMMAND_REJECTED", "bye-2"), ("BALANCE_PAID_OUT", None),
        ("ACCOUNT_CLOSED", "bye-3")]
    assert rows[4].payload == {"amount": 1_250, "reason": "sent by wire", "close_id": "bye-3"}


async def test_check_reports_an_open_account_without_a_workflow_and_repair_revives_it(accounts, pool):
    account, closed = new_account_id(), new_account_id()
    await accounts.open(account, "USD")
    await accounts.add_funds(account, 10, command_id="f-1")
    await accounts.open(closed, "USD")
    await accounts.close(closed)
    await terminated(accounts, account)

    found = await reconcile(pool, temporal_client=accounts, account_ids=[account, closed])
    repaired = await reconcile(pool, temporal_client=accounts, account_ids=[account, closed],
                               repair=True)
    after = await reconcile(pool, temporal_client=accounts, account_ids=[account, closed])

    assert [(f.account_id, f.field, f.actual) for f in found.findings] == [
        (account, "workflow", "TERMINATED")]  # the closed one's finished run is not a finding
    assert repaired.ok and repaired.repaired == [account]
    assert after.ok and after.workflows_checked == 1
    assert (await accounts.state(account, running_only=True)).balance == 10



async def test_a_close_key_reused_for_another_command_is_refused_after_the_run_ended(accounts, pool):
    account = new_account_id()
    await accounts.open(account, "USD")
    await accounts.add_funds(account, 40, command_id="f-1")
    await accounts.close(account, command_id="bye", reason="left", payout=True)
    await workflow_result(accounts.handle(account))

    with pytest.raises(IdempotencyKeyReused, match="close"):
        await accounts.add_funds(account, 44, command_id="bye")
    with pytest.raises(IdempotencyKeyReused):
        await accounts.close(account, command_id="bye", reason="another reason", payout=True)
    again = await accounts.close(account, command_id="bye", reason="left", payout=True)
    assert again is not None and (again.status, again.original_status) == ("duplicate", "applied")


async def test_opening_a_closed_account_again_is_account_exists(accounts):
    account = new_account_id()
    await accounts.open(account, "USD")
    await accounts.close(account, command_id="bye")
    await workflow_result(accounts.handle(account))
    with pytest.raises(AccountExists, match="closed"):
        await accounts.open(account, "USD")
