"""AccountClient against the real dev server: coalescing, per-caller outcomes, typed errors."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowUpdateFailedError

from starter.client import (
    AccountClient,
    AccountExists,
    AccountNotFound,
    CommandRejected,
    InsufficientFunds,
    InvalidCommand,
)
from workflows.messages import BatchOutcome


@pytest.fixture
def accounts(client, task_queue, worker) -> AccountClient:
    return AccountClient(client, task_queue)


async def append_activity_count(handle) -> int:
    history = await handle.fetch_history()
    return sum(1 for event in history.events if event.activity_task_scheduled_event_attributes.activity_type.name == "append_events")


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
    assert await append_activity_count(accounts.handle("hot")) < 20


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
    await accounts.close("t", reason="done")
    with pytest.raises(CommandRejected, match="closed"):
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
