"""AccountClient against the real dev server: coalescing, per-caller outcomes, single commands
under their public names, timeouts, and every failure as a typed error."""

from __future__ import annotations

import asyncio
import socket

import pytest
from temporalio.client import WorkflowUpdateFailedError

from client import (
    AccountClient,
    AccountExists,
    AccountNotFound,
    AccountNotRunning,
    CommandRejectedError,
    InsufficientFunds,
    InvalidCommand,
    TemporalUnavailable,
    TemporalUnreachable,
)
from config import Settings
from domain.commands import AddFunds, Charge
from tests.integration.helpers import new_account_id, scheduled_activities
from workflows.interface import BatchOutcome


@pytest.fixture
def accounts(client, task_queue, worker) -> AccountClient:
    return AccountClient(client, task_queue)


async def append_activity_count(handle) -> int:
    return await scheduled_activities(handle, "append_events")


async def test_concurrent_calls_coalesce_and_each_caller_gets_its_own_outcome(accounts):
    await accounts.open("hot", "USD")
    await accounts.add_funds("hot", 1_000, command_id="seed")
    charges = [accounts.charge("hot", 10, command_id=f"c{i}") for i in range(150)]
    results = await asyncio.gather(*charges, return_exceptions=True)

    applied = [r for r in results if not isinstance(r, BaseException)]
    declined = [r for r in results if isinstance(r, InsufficientFunds)]
    assert (len(applied), len(declined)) == (100, 50)
    assert sorted(outcome.version for outcome in applied) == list(range(3, 103))
    assert all(error.outcome.balance == 0 for error in declined)
    state = await accounts.state("hot")
    assert (state.balance, state.version) == (0, 152)
    # 150 callers, but only a handful of messages and store round trips.
    assert 1 <= await append_activity_count(accounts.handle("hot")) < 20


async def test_duplicate_command_ids_apply_once(accounts):
    await accounts.open("dup", "EUR")
    first, second = await asyncio.gather(
        accounts.add_funds("dup", 500, command_id="same"),
        accounts.add_funds("dup", 500, command_id="same"),
    )
    assert sorted([first.status, second.status]) == ["applied", "duplicate"]
    assert first.version == second.version == 2
    assert (await accounts.state("dup")).balance == 500


async def test_typed_errors(accounts):
    with pytest.raises(AccountNotFound):
        await accounts.state("nobody")
    with pytest.raises(InvalidCommand, match="currency"):
        await accounts.open("x", "usd")
    await accounts.open("t", "JPY")
    with pytest.raises(AccountExists):
        await accounts.open("t", "JPY")
    with pytest.raises(InvalidCommand, match="amount"):
        await accounts.charge("t", 0)
    with pytest.raises(InvalidCommand, match="command_id"):  # not replaced by a fresh one
        await accounts.add_funds("t", 5, command_id="")
    with pytest.raises(InvalidCommand, match="command_id"):
        await accounts.close("t", command_id="")
    await accounts.close("t", reason="done")
    with pytest.raises(CommandRejectedError, match="closed"):
        await accounts.add_funds("t", 5)


async def test_fire_and_forget_calls_arrive_as_batch_signals(accounts):
    await accounts.open("ff", "USD")
    await asyncio.gather(*(accounts.add_funds("ff", 1, wait=False) for _ in range(40)))
    outcome = await accounts.add_funds("ff", 1)  # ordered after the signals already delivered
    assert (outcome.balance, outcome.version) == (41, 42)


async def test_post_batch_update_validator_rejects_any_malformed_item(accounts):
    await accounts.open("pb", "USD")
    handle = accounts.handle("pb")
    body = {"commands": [{"kind": "add_funds", "command_id": "ok", "amount": 5},
                         {"kind": "charge", "command_id": "bad", "amount": -5}]}
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update("post_batch", body, result_type=BatchOutcome)
    assert failure.value.cause.type == "InvalidCommand"
    assert "commands[1]" in failure.value.cause.message
    assert (await accounts.state("pb")).version == 1  # nothing entered the log


async def test_post_batch_signal_records_each_malformed_item(accounts, pool):
    await accounts.open("pbs", "USD")
    body = {"commands": [{"kind": "add_funds", "command_id": "ok", "amount": 5},
                         {"kind": "charge", "command_id": "bad", "amount": 1.5},
                         "not a command"]}
    await accounts.handle("pbs").signal("post_batch", body)
    outcome = await accounts.add_funds("pbs", 1, command_id="after")
    assert (outcome.balance, outcome.version) == (6, 5)
    async with pool.connection() as conn:
        rows = await (await conn.execute(
            "SELECT event_type, command_id FROM account_events WHERE account_id = 'pbs'"
            " ORDER BY version")).fetchall()
    assert rows == [("ACCOUNT_CREATED", None), ("FUND_ADDED", "ok"), ("COMMAND_REJECTED", None),
                    ("COMMAND_REJECTED", None), ("FUND_ADDED", "after")]


def accepted_updates(history) -> list[str]:
    return [event.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
            for event in history.events
            if event.HasField("workflow_execution_update_accepted_event_attributes")]


def signals(history) -> list[str]:
    return [event.workflow_execution_signaled_event_attributes.signal_name
            for event in history.events
            if event.HasField("workflow_execution_signaled_event_attributes")]


async def test_send_one_uses_the_public_message_names(accounts):
    await accounts.open("one", "USD", overdraft_limit=100)
    funded = await accounts.send_one("one", AddFunds(command_id="f", amount=50))
    assert await accounts.send_one("one", Charge(command_id="s", amount=10), wait=False) is None
    with pytest.raises(InsufficientFunds) as declined:
        await accounts.send_one("one", Charge(command_id="big", amount=1_000))
    assert (funded.status, funded.version) == ("applied", 2)
    assert (declined.value.outcome.status, declined.value.outcome.balance) == ("declined", 40)
    history = await accounts.handle("one").fetch_history()
    assert accepted_updates(history) == ["opened", "add_funds", "charge"]
    assert signals(history) == ["charge"] and accounts.messages_sent == 0


async def test_a_repeat_of_a_declined_charge_is_a_duplicate_of_the_decline(accounts):
    await accounts.open("again", "USD")
    with pytest.raises(InsufficientFunds):
        await accounts.send_one("again", Charge(command_id="k", amount=5))
    await accounts.add_funds("again", 100)
    repeat = await accounts.send_one("again", Charge(command_id="k", amount=5))
    assert (repeat.status, repeat.version, repeat.balance) == ("duplicate", 2, 100)


async def test_unknown_accounts_are_typed_on_every_path(accounts):
    with pytest.raises(AccountNotFound, match="account ghost not found"):
        await accounts.send_one("ghost", AddFunds(command_id="a", amount=1))
    with pytest.raises(AccountNotFound):
        await accounts.send_one("ghost", AddFunds(command_id="b", amount=1), wait=False)
    with pytest.raises(AccountNotFound):
        await accounts.charge("ghost", 1)
    with pytest.raises(AccountNotFound):
        await accounts.close("ghost")


async def test_no_worker_means_temporal_unavailable_within_the_rpc_timeout(client, task_queue):
    lonely = AccountClient(client, f"{task_queue}-nobody", rpc_timeout=2.0)
    # A fresh id: the dev server is the session's, and other tests open accounts on it too (a
    # fixed "lonely" once met the gateway tests' own "lonely": AccountExists).
    account = new_account_id()
    with pytest.raises(TemporalUnavailable, match="Its workflow has started") as opening:
        await lonely.open(account, "USD")
    assert f"task queue '{task_queue}-nobody'" in str(opening.value)
    try:
        with pytest.raises(TemporalUnavailable) as update:
            await lonely.send_one(account, AddFunds(command_id="k", amount=1))
        assert update.value.command_id == "k"
        with pytest.raises(TemporalUnavailable):
            await lonely.add_funds(account, 1)
        with pytest.raises(TemporalUnavailable):
            await lonely.state(account)
    finally:
        await lonely.handle(account).terminate(reason="test done")


async def test_wait_for_returns_the_view_or_gives_up(accounts):
    await accounts.open("w", "USD")
    await accounts.add_funds("w", 7, wait=False)
    view = await accounts.wait_for("w", lambda v: v.balance == 7, timeout=10)
    assert view.version == 2
    with pytest.raises(TemporalUnavailable, match=r"balance 8 did not happen within 0\.2s"):
        await accounts.wait_for("w", lambda v: v.balance == 8, timeout=0.2, what="balance 8")


async def test_an_ended_workflow_is_reported_only_when_a_running_one_is_asked_for(accounts):
    await accounts.open("ended", "USD")
    await accounts.handle("ended").terminate(reason="test")
    with pytest.raises(AccountNotRunning) as ended:
        await accounts.state("ended", running_only=True)
    assert ended.value.status == "TERMINATED"


async def test_connect_to_nothing_is_temporal_unreachable():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(TemporalUnreachable) as unreachable:
        await AccountClient.connect(Settings(database_url=None, temporal_address=address),
                                    rpc_timeout=5)
    assert unreachable.value.address == address
