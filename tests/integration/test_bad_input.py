"""A catalogue of bad input, table-driven, through every way in: signals, updates, ``post_batch``,
``AccountClient``, the CLI (``starter.cli.run`` in-process) and the workflow's start input.

For each kind of bad input the test expects a clear, typed refusal (an ``ApplicationError`` type,
a ``starter.client`` error, a CLI exit code with one ``error:`` line, or a ``COMMAND_REJECTED``
event naming the problem), then checks that nothing else changed (balance, version and the
number of events move exactly as expected) and that the account still works (a valid command
sent afterwards applies at the next version).

Signals that are malformed in ways ``test_account_workflow.py`` already covers (negative, zero,
fractional and string amounts, missing or 129-character ids, unknown fields, non-objects, wrong
argument counts, control characters) are not repeated for the same path here.

Payloads that do not decode at all (not valid JSON, or an encoding the converter does not know)
have their own tests at the end, one per way in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from client import (
    AccountClient,
    AccountClosedError,
    AccountExists,
    AccountHasBalance,
    AccountNotFound,
    CommandRejectedError,
    IdempotencyKeyReused,
    InsufficientFunds,
    InvalidCommand,
)
from domain.commands import AddFunds
from domain.memory import COMMANDS_KEPT
from starter import cli
from tests.integration.helpers import (
    all_runs,
    assert_no_failed_workflow_tasks,
    count_events,
    fetch_account_row,
    fetch_events,
    history_events,
    new_account_id,
    start_account,
    update,
    wait_settled,
    workflow_result,
)
from workflows.interface import WORKFLOW_TYPE, AccountView, BatchOutcome, CommandOutcome, workflow_id

MAX_AMOUNT, MAX_BALANCE = 10**15, 10**18
STUCK_AFTER = 3.0  # seconds: a refusal that has not come by then is not coming


def cmd(command_id: Any, amount: Any, **extra: Any) -> dict[str, Any]:
    return {"command_id": command_id, "amount": amount, **extra}


def item(kind: str, command_id: str, amount: Any, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, **cmd(command_id, amount, **extra)}


def raw_json(text: str) -> RawValue:
    """A payload sent exactly as written: JSON that Python's encoder would not produce."""
    return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=text.encode()))


def raw_bytes(data: bytes, encoding: bytes = b"json/plain") -> RawValue:
    return RawValue(Payload(metadata={"encoding": encoding}, data=data))


@dataclass(frozen=True)
class Recorded:
    """An event the bad input must add: its type, command id and a phrase of its reason."""

    type: str
    command_id: str | None = None
    phrase: str | None = None


def rejected(phrase: str) -> list[Recorded]:
    return [Recorded("COMMAND_REJECTED", None, phrase)]


@dataclass(frozen=True)
class BadSignal:
    kind: str
    signal: str
    args: list[Any]
    recorded: list[Recorded]
    balance_delta: int = 0


@dataclass(frozen=True)
class Args:
    """Several (or no) arguments, where a table expects one."""

    values: list[Any]


def as_args(arg: Any) -> list[Any]:
    return arg.values if isinstance(arg, Args) else [arg]


@dataclass(frozen=True)
class BadUpdate:
    kind: str
    update: str
    arg: Any  # one argument, or Args


@dataclass(frozen=True)
class BadCli:
    kind: str
    argv: list[str]  # "{acct}" and "{new}" are replaced by the test's account ids
    exit_code: int
    phrase: str
    events_delta: int = 0


@dataclass(frozen=True)
class BadStart:
    kind: str
    start_input: Any  # one argument, or Args; "{id}" in account_id is replaced by a fresh id
    phrase: str
    other_workflow_id: bool = False  # started under an id that is not account-<account_id>


@dataclass
class Catalogue:
    """Every kind of bad input tried, by path, for the count printed at the end."""

    kinds: dict[str, list[str]] = field(default_factory=dict)

    def add(self, path: str, *kinds: str) -> None:
        self.kinds.setdefault(path, []).extend(kinds)


CATALOGUE = Catalogue()

# --- signals: recorded as COMMAND_REJECTED, without the command id ------------------------------

BAD_SIGNALS = [
    BadSignal("NaN amount", "charge", [cmd("s-nan", float("nan"))], rejected("amount")),
    BadSignal("Infinity amount (raw JSON)", "charge",
              [raw_json('{"command_id": "s-inf", "amount": Infinity}')], rejected("amount")),
    BadSignal("-Infinity amount (raw JSON)", "add_funds",
              [raw_json('{"command_id": "s-ninf", "amount": -Infinity}')], rejected("amount")),
    BadSignal("amount 10**16, over the per-command maximum", "add_funds",
              [cmd("s-big", 10**16)], rejected("amount")),
    BadSignal("amount 10**30, beyond 64 bits (raw JSON)", "add_funds",
              [raw_json('{"command_id": "s-huge", "amount": 1000000000000000000000000000000}')],
              rejected("amount")),
    BadSignal("amount 1e3, a JSON float in exponent form", "add_funds",
              [raw_json('{"command_id": "s-exp", "amount": 1e3}')], rejected("amount")),
    BadSignal("amount as an object", "charge", [cmd("s-obj", {"value": 5})], rejected("amount")),
    BadSignal("empty command_id", "add_funds", [cmd("", 5)], rejected("command_id")),
    BadSignal("DEL character in command_id", "add_funds", [cmd("a\x7fb", 5)], rejected("command_id")),
    BadSignal("description of 501 characters", "add_funds",
              [cmd("s-long", 5, description="d" * 501)], rejected("description")),
    BadSignal("description not a string", "charge", [cmd("s-desc", 5, description=7)],
              rejected("description")),
    BadSignal("null argument", "charge", [None], rejected("expected a JSON object")),
    BadSignal("binary payload, not JSON", "charge", [raw_bytes(b"\x00\x01", b"binary/plain")],
              rejected("expected a JSON object")),
    BadSignal("close: reason not a string", "close", [{"command_id": "cl-1", "reason": 5}],
              rejected("reason")),
    BadSignal("close: unknown field", "close", [{"command_id": "cl-2", "why": "x"}], rejected("why")),
    BadSignal("close: two arguments", "close", [{"command_id": "cl-3"}, {"command_id": "cl-4"}],
              rejected("got 2")),
    BadSignal("close: empty command_id", "close", [{"command_id": ""}], rejected("command_id")),
    BadSignal("post_batch: unknown kind next to a good command", "post_batch",
              [{"commands": [item("transfer", "b-1", 5), item("add_funds", "b-2", 3)]}],
              [Recorded("COMMAND_REJECTED", None, "commands[0]"), Recorded("FUND_ADDED", "b-2")],
              balance_delta=3),
    BadSignal("post_batch: close inside a batch", "post_batch",
              [{"commands": [{"kind": "close", "command_id": "b-3"}]}], rejected("commands[0]")),
    BadSignal("post_batch: 1001 commands", "post_batch",
              [{"commands": [item("add_funds", f"m-{i}", 1) for i in range(1001)]}],
              rejected("got 1001")),
    BadSignal("post_batch: no commands", "post_batch", [{"commands": []}], rejected("got 0")),
    BadSignal("post_batch: extra envelope field", "post_batch",
              [{"commands": [item("add_funds", "b-4", 1)], "priority": "high"}],
              rejected("no other field")),
    BadSignal("post_batch: commands not a list", "post_batch",
              [{"commands": item("add_funds", "b-5", 1)}], rejected("no other field")),
    BadSignal("post_batch: NUL in an item's command_id", "post_batch",
              [{"commands": [item("add_funds", "b\x006", 1)]}], rejected("command_id")),
    BadSignal("post_batch: an item that is not an object", "post_batch",
              [{"commands": ["add_funds 5"]}], rejected("commands[0]")),
    BadSignal("post_batch: no argument", "post_batch", [], rejected("got 0")),
]
CATALOGUE.add("signal", *(case.kind for case in BAD_SIGNALS))


async def test_bad_signals_are_recorded_as_rejections_and_change_nothing_else(
        client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)
    await update(handle, "add_funds", cmd("f-0", 100))

    for index, case in enumerate(BAD_SIGNALS):
        before = await handle.query("state", result_type=AccountView)
        await handle.signal(case.signal, args=case.args)
        # Commands are applied in the order received: this one lands right after the bad one.
        after = await update(handle, "add_funds", cmd(f"after-{index}", 1))

        new_events = len(case.recorded) + 1
        assert (after.status, after.version, after.balance) == (
            "applied", before.version + new_events, before.balance + case.balance_delta + 1), case.kind
        rows = (await fetch_events(pool, account))[-new_events:]
        for row, expected in zip(rows, case.recorded, strict=False):
            assert (row.event_type, row.command_id) == (expected.type, expected.command_id), case.kind
            if expected.phrase is not None:
                assert expected.phrase in row.payload["reason"], (case.kind, row.payload)
        assert await count_events(pool, account) == after.version, case.kind

    view = await wait_settled(handle, after.version)
    assert view.status == "open"
    await assert_no_failed_workflow_tasks(handle)


# --- updates: refused by the validator with InvalidCommand, before anything is recorded ----------

BAD_UPDATES = [
    BadUpdate("NaN amount", "charge", cmd("u-nan", float("nan"))),
    BadUpdate("Infinity amount (raw JSON)", "add_funds",
              raw_json('{"command_id": "u-inf", "amount": Infinity}')),
    BadUpdate("amount 10**16", "add_funds", cmd("u-big", 10**16)),
    BadUpdate("amount 2**63, past a signed 64-bit integer", "add_funds", cmd("u-i64", 2**63)),
    BadUpdate("amount 5.0, a float without a fraction", "charge", cmd("u-float", 5.0)),
    BadUpdate("amount null", "charge", cmd("u-null", None)),
    BadUpdate("command_id of 129 non-ASCII characters", "add_funds", cmd("é" * 129, 5)),
    BadUpdate("NUL in description", "add_funds", cmd("u-nul", 5, description="a\x00b")),
    BadUpdate("unknown field region", "charge", cmd("u-region", 5, region="eu")),
    BadUpdate("currency in lowercase", "charge", cmd("u-cur", 5, currency="usd")),
    BadUpdate("kind of the other command", "add_funds", cmd("u-kind", 5, kind="charge")),
    BadUpdate("post_batch: unknown kind", "post_batch", {"commands": [item("transfer", "u-b1", 5)]}),
    BadUpdate("post_batch: 1001 commands", "post_batch",
              {"commands": [item("add_funds", f"u-m{i}", 1) for i in range(1001)]}),
    BadUpdate("post_batch: no commands", "post_batch", {"commands": []}),
    BadUpdate("post_batch: one bad command among good ones", "post_batch",
              {"commands": [item("add_funds", "u-b2", 5), item("charge", "u-b3", -5),
                            item("add_funds", "u-b4", 5)]}),
    BadUpdate("post_batch: a list instead of an object", "post_batch", [item("add_funds", "u-b5", 5)]),
    BadUpdate("no argument", "add_funds", Args([])),
    BadUpdate("two arguments", "charge", Args([cmd("u-two-1", 5), cmd("u-two-2", 5)])),
    BadUpdate("post_batch: two arguments", "post_batch",
              Args([{"commands": [item("add_funds", "u-b6", 5)]}] * 2)),
    BadUpdate("post_batch: over 1 MB of JSON, under 2 MB", "post_batch",
              {"commands": [item("add_funds", f"u-w{i}", 1, description="é" * 500)
                            for i in range(1000)]}),
]
CATALOGUE.add("update", *(case.kind for case in BAD_UPDATES), "unknown update name")


async def test_bad_updates_are_refused_as_invalid_commands_before_anything_is_recorded(
        client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)
    await update(handle, "add_funds", cmd("f-0", 100))
    events_before = await count_events(pool, account)

    for index, case in enumerate(BAD_UPDATES):
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await asyncio.wait_for(handle.execute_update(
                case.update, args=as_args(case.arg), id=f"bad-{index}",
                result_type=BatchOutcome if case.update == "post_batch" else CommandOutcome), 10)
        cause = info.value.cause
        assert isinstance(cause, ApplicationError), (case.kind, cause)
        assert (cause.type, cause.non_retryable) == ("InvalidCommand", True), (case.kind, cause)
        assert await count_events(pool, account) == events_before, case.kind

    with pytest.raises(WorkflowUpdateFailedError) as info:  # refused by the validator, naming the real ones
        await update(handle, "transfer", cmd("u-transfer", 5), id="bad-name")
    assert getattr(info.value.cause, "type", None) == "InvalidCommand", info.value.cause
    assert "known updates" in str(info.value.cause) and "add_funds" in str(info.value.cause)

    accepted = await history_events(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
    assert not any(e.workflow_execution_update_accepted_event_attributes.accepted_request.meta
                   .update_id.startswith("bad-") for e in accepted)
    # the refused commands used up nothing: the good ids of the refused batch still apply
    outcome = await update(handle, "post_batch", {"commands": [item("add_funds", "u-b2", 5),
                                                               item("add_funds", "u-b4", 5)]},
                           result_type=BatchOutcome)
    assert [(o.status, o.version) for o in outcome.outcomes] == [
        ("applied", events_before + 1), ("applied", events_before + 2)]
    assert (await handle.query("state", result_type=AccountView)).balance == 110


# --- refusals the account records: declined, over the balance limit, closed ----------------------

CATALOGUE.add("recorded refusal", "balance past 10**18 (update)", "balance past 10**18 (signal)",
              "charge past the overdraft limit (client)", "close holding a balance",
              "payout without a reason", "client command to a closed account (revived)",
              "close of a closed account")


async def test_refusals_are_recorded_with_typed_errors_and_change_nothing_else(
        client, task_queue, worker, pool):
    accounts = AccountClient(client, task_queue, rpc_timeout=10)
    rich = new_account_id()
    handle = await start_account(client, task_queue, rich)
    # 1,000 commands is the most one batch may hold, and 10^18 the highest balance allowed.
    full = await update(handle, "post_batch", {"commands": [
        item("add_funds", f"max-{i}", MAX_AMOUNT) for i in range(1000)]}, result_type=BatchOutcome)
    assert {o.status for o in full.outcomes} == {"applied"}
    assert (full.outcomes[-1].balance, full.outcomes[-1].version) == (MAX_BALANCE, 1001)

    error = await update_error(handle, "add_funds", cmd("over-1", 1))
    assert error.type == "CommandRejected" and "exceed" in error.message
    assert (error.details[0]["balance"], error.details[0]["version"]) == (MAX_BALANCE, 1002)
    await handle.signal("post_batch", {"commands": [item("add_funds", "over-2", 1)]})
    after = await accounts.charge(rich, MAX_AMOUNT, command_id="spend-1")
    assert (after.status, after.balance, after.version) == ("applied", MAX_BALANCE - MAX_AMOUNT, 1004)
    rows = (await fetch_events(pool, rich))[1001:]
    assert [(r.event_type, r.command_id) for r in rows] == [
        ("COMMAND_REJECTED", "over-1"), ("COMMAND_REJECTED", "over-2"), ("CHARGE_APPLIED", "spend-1")]
    assert "exceed" in rows[1].payload["reason"]

    poor = new_account_id()
    await accounts.open(poor, "USD", overdraft_limit=50)
    await accounts.add_funds(poor, 100, command_id="f-1")
    with pytest.raises(InsufficientFunds) as declined:
        await accounts.charge(poor, 151, command_id="c-1")
    assert (declined.value.outcome.status, declined.value.outcome.balance,
            declined.value.outcome.version) == ("declined", 100, 3)
    assert (await accounts.charge(poor, 150, command_id="c-2")).balance == -50  # the boundary

    # Closing keeps no money: a balance must be paid out, with a reason, in the close itself.
    with pytest.raises(AccountHasBalance) as holding:
        await accounts.close(poor, command_id="bye-0", reason="test")
    assert holding.value.outcome.version == 5 and "of -50 " in str(holding.value)
    with pytest.raises(CommandRejectedError, match="a payout needs a reason"):
        await accounts.close(poor, command_id="bye-1", payout=True)
    closed = await accounts.close(poor, command_id="bye", reason="written off", payout=True)
    assert (closed.status, closed.balance, closed.version) == ("applied", 0, 8)
    await workflow_result(accounts.handle(poor))  # a closed account's run ends once drained
    # Later commands revive it from the log, are answered "closed" and recorded, and change nothing.
    with pytest.raises(AccountClosedError) as refused:
        await accounts.add_funds(poor, 1, command_id="f-2")
    assert refused.value.outcome.version == 11  # after the final invoice, drafted at the close
    with pytest.raises(AccountClosedError):
        await accounts.close(poor, command_id="bye-2")
    again = await accounts.send_one(poor, AddFunds(command_id="f-1", amount=100))
    assert (again.status, again.version, again.balance) == ("duplicate", 2, 0)  # keys still known
    rows = await fetch_events(pool, poor)
    assert [(r.event_type, r.command_id) for r in rows[4:]] == [
        ("COMMAND_REJECTED", "bye-0"), ("COMMAND_REJECTED", "bye-1"), ("BALANCE_PAID_OUT", None),
        ("ACCOUNT_CLOSED", "bye"), ("INVOICE_DRAFTED", "invoice-1-drafted"),
        ("INVOICE_FINALIZED", "invoice-1-finalized"), ("COMMAND_REJECTED", "f-2"),
        ("COMMAND_REJECTED", "bye-2")]
    assert rows[6].payload["amount"] == -50 and rows[6].payload["reason"] == "written off"
    projection = await fetch_account_row(pool, poor)
    assert (projection["balance"], projection["version"], projection["status"]) == (0, 12, "closed")


# --- commands to an account whose workflow was terminated ----------------------------------------

CATALOGUE.add("terminated workflow", "client update to a terminated workflow",
              "client signal to a terminated workflow", "raw signal to a terminated workflow")


async def test_commands_to_a_terminated_workflow_revive_it_through_the_client(
        client, task_queue, worker, pool):
    """A raw handle's signal to a terminated run fails (nothing is recorded); the client's
    commands revive the account from the log and are applied, exactly once."""
    accounts = AccountClient(client, task_queue, rpc_timeout=10)
    account = new_account_id()
    await accounts.open(account, "USD")
    await accounts.add_funds(account, 100, command_id="f-1")
    await accounts.handle(account).terminate(reason="test: an operator's mistake")

    with pytest.raises(RPCError):
        await accounts.handle(account).signal("add_funds", cmd("raw-1", 5))
    applied = await accounts.add_funds(account, 7, command_id="f-2")
    await accounts.handle(account).terminate(reason="test: again")
    await accounts.send_one(account, AddFunds(command_id="f-3", amount=3), wait=False)
    view = await accounts.wait_for(account, lambda v: v.version == 4)

    assert (applied.status, applied.balance, applied.version) == ("applied", 107, 3)
    assert view.balance == 110 and accounts.revived == 2
    assert [r.command_id for r in await fetch_events(pool, account)] == [None, "f-1", "f-2", "f-3"]


# --- reused idempotency keys and commands in another currency --------------------------------------

CATALOGUE.add("reused key or currency", "update: a key reused with another amount",
              "update: a key reused for another kind", "update: a key reused with another description",
              "post_batch: a key reused inside the batch", "signal: a key reused with another amount",
              "client: a key reused with another amount", "a key older than the memory, reused",
              "a key reused after continue-as-new", "update in another currency",
              "signal in another currency", "client command in another currency")


async def test_a_reused_key_is_refused_naming_what_differs_and_records_nothing(
        client, task_queue, worker, pool):
    accounts = AccountClient(client, task_queue, rpc_timeout=10)
    account = new_account_id()
    handle = await start_account(client, task_queue, account, history_budget=40)
    first = await update(handle, "add_funds", cmd("k-1", 500, description="top-up"))

    refusals = [await update_error(handle, "add_funds", cmd("k-1", 250, description="top-up")),
                await update_error(handle, "charge", cmd("k-1", 500, description="top-up")),
                await update_error(handle, "add_funds", cmd("k-1", 500, description="other"))]
    batch = await update(handle, "post_batch", {"commands": [
        item("add_funds", "k-2", 5), item("add_funds", "k-2", 6)]}, result_type=BatchOutcome)
    await handle.signal("add_funds", cmd("k-1", 999))
    with pytest.raises(IdempotencyKeyReused) as from_client:
        await accounts.charge(account, 1, command_id="k-1")
    for index in range(12):  # past the run's history budget: the memory crosses continue-as-new
        await update(handle, "add_funds", cmd(f"pad-{index}", 1))
    after_can = await update_error(handle, "add_funds", cmd("k-1", 1))
    duplicate = await update(handle, "add_funds", cmd("k-1", 500, description="top-up"))

    assert [e.type for e in [*refusals, after_can]] == ["IdempotencyKeyReused"] * 4
    assert "an amount of 500, not 250" in refusals[0].message
    assert "for an add_funds, not a charge" in refusals[1].message
    assert "another description" in refusals[2].message
    assert refusals[0].details[0]["version"] == first.version == 2
    assert [(o.status, o.version) for o in batch.outcomes] == [("applied", 3), ("refused", 3)]
    assert "not a charge" in str(from_client.value) and from_client.value.outcome.status == "refused"
    assert (duplicate.status, duplicate.version) == ("duplicate", 2)
    assert len(await all_runs(client, handle)) >= 2, "expected a continue-as-new"
    rows = await fetch_events(pool, account)
    assert [r.command_id for r in rows].count("k-1") == 1 and len(rows) == 3 + 12
    assert (await wait_settled(handle, 15)).balance == 505 + 12


async def test_a_key_older_than_the_memory_is_checked_against_the_log(client, task_queue, worker, pool):
    account, old = new_account_id(), COMMANDS_KEPT + 5
    key = AddFunds(command_id="old-1", amount=1)
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO account_events (event_id, account_id, version, event_type, payload)"
            " VALUES (gen_random_uuid(), %s, 1, 'ACCOUNT_CREATED',"
            " jsonb_build_object('account_id', %s::text, 'currency', 'USD', 'overdraft_limit', 0))",
            (account, account))
        await conn.execute(
            "INSERT INTO account_events (event_id, account_id, version, event_type, payload,"
            " command_id, command_fingerprint) SELECT gen_random_uuid(), %s, n + 1, 'FUND_ADDED',"
            " '{\"amount\": 1, \"description\": \"\"}', 'old-' || n, %s"
            " FROM generate_series(1, %s) n", (account, key.fingerprint(), old))
        await conn.execute("INSERT INTO accounts (account_id, currency, balance, version)"
                           " VALUES (%s, 'USD', %s, %s)", (account, old, old + 1))
    handle = await start_account(client, task_queue, account)

    reused = await update_error(handle, "add_funds", cmd("old-1", 2))
    same = await update(handle, "add_funds", cmd("old-1", 1))

    assert reused.type == "IdempotencyKeyReused" and "an amount of 1, not 2" in reused.message
    assert (same.status, same.version, same.original_status) == ("duplicate", 2, "applied")
    assert await count_events(pool, account) == old + 1


async def test_a_command_in_another_currency_is_rejected_and_recorded(client, task_queue, worker, pool):
    accounts = AccountClient(client, task_queue, rpc_timeout=10)
    account = new_account_id()
    handle = await start_account(client, task_queue, account, currency="EUR")

    error = await update_error(handle, "charge", cmd("usd-1", 5, currency="USD"))
    await handle.signal("add_funds", cmd("usd-2", 5, currency="USD"))
    with pytest.raises(CommandRejectedError) as from_client:
        await accounts.add_funds(account, 5, command_id="usd-3", currency="USD")
    applied = await accounts.add_funds(account, 5, command_id="eur-1", currency="EUR")

    assert error.type == "CommandRejected"
    assert error.message == "the command is in USD, the account in EUR"
    assert "USD" in str(from_client.value)
    assert applied is not None and (applied.status, applied.balance) == ("applied", 5)
    rows = await fetch_events(pool, account)
    assert [(r.event_type, r.command_id) for r in rows[1:]] == [
        ("COMMAND_REJECTED", "usd-1"), ("COMMAND_REJECTED", "usd-2"), ("COMMAND_REJECTED", "usd-3"),
        ("FUND_ADDED", "eur-1")]


# --- AccountClient: refused locally before anything is sent, or typed errors from the server -----

CLIENT_OPENS = [
    ("open: lowercase currency", {"currency": "usd"}),
    ("open: unknown currency", {"currency": "ZZZ"}),
    ("open: currency without a minor unit", {"currency": "XAU"}),
    ("open: account id with spaces", {"account_id": "two words"}),
    ("open: account id carrying SQL", {"account_id": "x'; DROP TABLE accounts; --"}),
    ("open: account id of 65 characters", {"account_id": "a" * 65}),
    ("open: empty account id", {"account_id": ""}),
    ("open: negative overdraft limit", {"overdraft_limit": -1}),
    ("open: fractional overdraft limit", {"overdraft_limit": 1.5}),
    ("open: overdraft limit 10**16", {"overdraft_limit": 10**16}),
]
CLIENT_COMMANDS = [
    ("client: amount 0", {"amount": 0}),
    ("client: negative amount", {"amount": -1}),
    ("client: fractional amount", {"amount": 1.5}),
    ("client: bool amount", {"amount": True}),
    ("client: string amount", {"amount": "5"}),
    ("client: amount 10**16", {"amount": 10**16}),
    ("client: empty command_id", {"command_id": ""}),
    ("client: command_id of 129 characters", {"command_id": "k" * 129}),
    ("client: NUL in command_id", {"command_id": "a\x00b"}),
    ("client: description of 501 characters", {"description": "d" * 501}),
]
CATALOGUE.add("client", *(kind for kind, _ in CLIENT_OPENS + CLIENT_COMMANDS),
              "open: an account that exists", "command to an unknown account",
              "close of an unknown account", "state of an unknown account")


async def test_the_client_refuses_bad_input_with_typed_errors(client, task_queue, worker, pool):
    accounts = AccountClient(client, task_queue, rpc_timeout=10)
    account = new_account_id()
    await accounts.open(account, "USD")
    await accounts.add_funds(account, 100, command_id="f-1")

    for kind, bad in CLIENT_OPENS:
        fields = {"account_id": new_account_id(), "currency": "USD", **bad}
        with pytest.raises(InvalidCommand):
            await accounts.open(**fields)
        with pytest.raises(RPCError) as info:  # nothing was started
            await client.get_workflow_handle(workflow_id(fields["account_id"])).describe()
        assert info.value.status == RPCStatusCode.NOT_FOUND, kind
    with pytest.raises(AccountExists):
        await accounts.open(account, "USD")

    for kind, bad in CLIENT_COMMANDS:
        fields = {"command_id": f"k-{kind}"[:100], "amount": 5, **bad}
        for send in (accounts.add_funds, accounts.charge):
            with pytest.raises(InvalidCommand):
                await send(account, fields["amount"], command_id=fields["command_id"],
                           description=fields.get("description", ""))

    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    with pytest.raises(AccountNotFound):
        await accounts.add_funds(ghost, 5, command_id="g-1")
    with pytest.raises(AccountNotFound):
        await accounts.close(ghost, command_id="g-2")
    with pytest.raises(AccountNotFound):
        await accounts.state("x'; DROP TABLE accounts; --")

    view = await accounts.state(account)
    assert (view.balance, view.version, await count_events(pool)) == (100, 2, 2)
    outcome = await accounts.add_funds(account, 1, command_id="f-2")
    assert (outcome.status, outcome.balance, outcome.version) == ("applied", 101, 3)


# --- the CLI: an exit code and one `error:` line ---------------------------------------------------

BAD_CLI = [
    BadCli("cli: negative amount", ["fund", "{acct}", "-5"], 2, "error:"),
    BadCli("cli: amount not a number", ["fund", "{acct}", "abc"], 2, "plain positive decimal"),
    BadCli("cli: NaN amount", ["fund", "{acct}", "NaN"], 2, "plain positive decimal"),
    BadCli("cli: Infinity amount", ["charge", "{acct}", "Infinity"], 2, "plain positive decimal"),
    BadCli("cli: amount in exponent form", ["fund", "{acct}", "1e3"], 2, "plain positive decimal"),
    BadCli("cli: more decimals than the currency has", ["fund", "{acct}", "1.234"], 2, "decimal"),
    BadCli("cli: zero amount", ["charge", "{acct}", "0"], 2, "greater than zero"),
    BadCli("cli: amount over the maximum", ["fund", "{acct}", "10000000000000.01"], 2, "maximum"),
    BadCli("cli: idempotency key of 129 characters",
           ["fund", "{acct}", "1", "--idempotency-key", "k" * 129], 2, "idempotency-key"),
    BadCli("cli: empty idempotency key", ["fund", "{acct}", "1", "--idempotency-key", ""], 2,
           "idempotency-key"),
    BadCli("cli: NUL in description", ["fund", "{acct}", "1", "--description", "a\x00b"], 2,
           "description"),
    BadCli("cli: charge past the overdraft limit", ["charge", "{acct}", "1000.00"], 3, "declined", 1),
    BadCli("cli: an idempotency key reused with another amount",
           ["fund", "{acct}", "2", "--idempotency-key", "f-1"], 3, "an amount of 1000, not 200"),
    BadCli("cli: unknown account", ["charge", "{new}", "1"], 4, "not found"),
    BadCli("cli: open with an account id with spaces", ["open", "two words", "--currency", "USD"],
           2, "account_id"),
    BadCli("cli: open with an account id carrying SQL",
           ["open", "x'; DROP TABLE accounts; --", "--currency", "USD"], 2, "account_id"),
    BadCli("cli: open with an unknown currency", ["open", "{new}", "--currency", "ZZZ"], 2, "ZZZ"),
    BadCli("cli: open with a currency without minor unit", ["open", "{new}", "--currency", "XAU"],
           2, "XAU"),
    BadCli("cli: open with a negative overdraft limit",
           ["open", "{new}", "--currency", "USD", "--overdraft-limit", "-1"], 2, "error:"),
    BadCli("cli: open an account that exists", ["open", "{acct}", "--currency", "USD"], 5,
           "already exists"),
    BadCli("cli: missing amount", ["fund", "{acct}"], 2, "error:"),
    BadCli("cli: unknown verb", ["transfer", "{acct}", "1"], 2, "error:"),
    BadCli("cli: unknown option", ["fund", "{acct}", "1", "--colour", "red"], 2, "error:"),
]
CATALOGUE.add("cli", *(case.kind for case in BAD_CLI), "cli: close holding a balance",
              "cli: payout without a reason", "cli: charge to a closed account",
              "cli: close of a closed account")


async def test_the_cli_answers_bad_input_with_an_exit_code_and_one_error_line(
        client, task_queue, worker, pool, monkeypatch, capsys):
    monkeypatch.setenv("TEMPORAL_ADDRESS", client.service_client.config.target_host)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", client.namespace)
    monkeypatch.setenv("BILLING_TASK_QUEUE", task_queue)
    account = new_account_id()
    accounts = AccountClient(client, task_queue, rpc_timeout=10)
    await accounts.open(account, "USD")
    await accounts.add_funds(account, 1000, command_id="f-1")

    async def run(argv: list[str], exit_code: int, phrase: str, events_delta: int, kind: str) -> None:
        argv = [arg.format(acct=account, new=new_account_id()) for arg in argv]
        events_before = await count_events(pool)
        capsys.readouterr()
        code = await asyncio.to_thread(cli.run, argv)  # cli.run runs its own event loop
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert code == exit_code, (kind, code, out, err)
        assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], (kind, err)
        assert await count_events(pool) == events_before + events_delta, kind

    for case in BAD_CLI:
        await run(case.argv, case.exit_code, case.phrase, case.events_delta, case.kind)
    await run(["close", "{acct}"], 3, "--payout --reason", 1, "cli: close holding a balance")
    await run(["close", "{acct}", "--payout"], 3, "a payout needs a reason", 1,
              "cli: payout without a reason")
    assert await asyncio.to_thread(cli.run, ["close", account, "--payout", "--reason", "by wire"]) == 0
    await run(["charge", "{acct}", "1"], 3, "closed", 1, "cli: charge to a closed account")
    await run(["close", "{acct}"], 3, "already closed", 0, "cli: close of a closed account")

    view = await accounts.state(account)
    rows = await fetch_events(pool, account)
    assert [r.event_type for r in rows[-6:]] == [
        "COMMAND_REJECTED", "BALANCE_PAID_OUT", "ACCOUNT_CLOSED", "INVOICE_DRAFTED", "INVOICE_FINALIZED",
        "COMMAND_REJECTED"]
    assert (view.balance, view.version, view.status) == (0, len(rows), "closed")
    assert await count_events(pool) == len(rows)  # only the test's own account has events
    async with pool.connection() as conn:  # the tables are still there
        await conn.execute("SELECT count(*) FROM accounts")


# --- the start input: the run fails with InvalidAccount, and nothing is recorded ---------------------

BAD_STARTS = [
    BadStart("start: negative overdraft limit",
             {"account_id": "{id}", "currency": "USD", "overdraft_limit": -1}, "overdraft_limit"),
    BadStart("start: fractional overdraft limit",
             {"account_id": "{id}", "currency": "USD", "overdraft_limit": 1.5}, "overdraft_limit"),
    BadStart("start: overdraft limit 10**16",
             {"account_id": "{id}", "currency": "USD", "overdraft_limit": 10**16}, "overdraft_limit"),
    BadStart("start: unknown field", {"account_id": "{id}", "currency": "USD", "colour": "red"},
             "colour"),
    BadStart("start: missing currency", {"account_id": "{id}"}, "currency"),
    BadStart("start: currency as a number", {"account_id": "{id}", "currency": 840}, "currency"),
    BadStart("start: empty account id", {"account_id": "", "currency": "USD"}, "account_id"),
    BadStart("start: account id of 65 characters", {"account_id": "a" * 65, "currency": "USD"},
             "account_id"),
    BadStart("start: input not an object", "open USD please", "input"),
    BadStart("start: history budget below 10",
             {"account_id": "{id}", "currency": "USD", "history_budget": 5}, "history_budget"),
    BadStart("start: max_batch 0", {"account_id": "{id}", "currency": "USD", "max_batch": 0},
             "max_batch"),
    BadStart("start: no argument", Args([]), "got 0"),
    BadStart("start: two arguments", Args([{"account_id": "{id}", "currency": "USD"}, 1]), "got 2"),
    BadStart("start: account id not the workflow's", {"account_id": "{id}", "currency": "USD"},
             "belongs to workflow id", other_workflow_id=True),
]
CATALOGUE.add("start", *(case.kind for case in BAD_STARTS), "start: a second start of a running account")


async def test_a_bad_start_input_fails_the_run_as_invalid_account(client, task_queue, worker, pool):
    async def start(case: BadStart) -> None:
        account_id = f"start-{uuid.uuid4().hex[:8]}"
        args = as_args(case.start_input)
        if args and isinstance(args[0], dict):
            args[0] = {**args[0], "account_id": args[0]["account_id"].format(id=account_id)}
            account_id = args[0]["account_id"]
        run_id = workflow_id(f"other-{uuid.uuid4().hex[:8]}" if case.other_workflow_id else account_id)
        handle = await client.start_workflow(WORKFLOW_TYPE, args=args, id=run_id,
                                             task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as info:
            await workflow_result(handle)
        cause = info.value.cause
        assert isinstance(cause, ApplicationError), (case.kind, cause)
        assert cause.type == "InvalidAccount" and cause.non_retryable, (case.kind, cause)
        assert case.phrase in cause.message, (case.kind, cause.message)

    await asyncio.gather(*(start(case) for case in BAD_STARTS))
    assert await count_events(pool) == 0

    account = new_account_id()
    await start_account(client, task_queue, account)
    with pytest.raises(WorkflowAlreadyStartedError):
        await start_account(client, task_queue, account, overdraft_limit=10**6)
    view = await client.get_workflow_handle(workflow_id(account)).query("state", result_type=AccountView)
    assert (view.overdraft_limit, view.version) == (0, 1)


# --- payloads over Temporal's 2 MB limit ----------------------------------------------------------

CATALOGUE.add("huge", "signal over 2 MB", "update over 2 MB", "valid post_batch update over 2 MB")


async def test_a_signal_over_2_mb_is_refused_to_the_client_and_changes_nothing(
        client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)
    await update(handle, "add_funds", cmd("f-1", 100))

    with pytest.raises(RPCError) as info:
        await handle.signal("add_funds", cmd("huge", 5, note="x" * (2 * 1024 * 1024 + 100)))

    assert "size" in info.value.message.lower(), info.value
    outcome = await update(handle, "add_funds", cmd("f-2", 1))
    assert (outcome.status, outcome.balance, outcome.version) == ("applied", 101, 3)
    assert await count_events(pool, account) == 3


@pytest.mark.parametrize("name, arg", [
    ("add_funds", cmd("huge", 5, note="x" * (2 * 1024 * 1024 + 100))),
    # valid command by command: 1,000 maximal ones in 4-byte UTF-8 weigh about 2.6 MB
    ("post_batch", {"commands": [item("add_funds", f"{i:04d}".ljust(128, "\U0001F600"), 1,
                                      description="\U0001F600" * 500) for i in range(1000)]}),
], ids=["invalid", "valid-items"])
async def test_an_update_over_2_mb_is_refused_and_the_account_keeps_working(
        client, task_queue, worker, pool, name, arg):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)
    assert len(json.dumps(arg, ensure_ascii=False).encode()) > 2 * 1024 * 1024
    try:
        with pytest.raises((WorkflowUpdateFailedError, RPCError)):
            await update(handle, name, arg, timeout=STUCK_AFTER,
                         result_type=BatchOutcome if name == "post_batch" else CommandOutcome)
        # The server may terminate the run over an oversized rejection (docs/decisions.md,
        # "Updates over 2 MB"): the client revives it from the log, and nothing was recorded.
        accounts = AccountClient(client, task_queue, rpc_timeout=STUCK_AFTER)
        outcome = await accounts.send_one(account, AddFunds(command_id="f-1", amount=1))
        assert (outcome.status, outcome.version) == ("applied", 2)
        assert await count_events(pool, account) == 2
    finally:
        await terminate_all([handle])


# --- payloads that do not decode, and signals no handler knows -------------------------------------

UNDECODABLE = [
    ("not valid JSON", raw_json('{"command_id": "j-1", "amount": ')),
    ("a lone UTF-16 surrogate", raw_json('{"command_id": "\\ud800", "amount": 5}')),
    ("bytes that are not UTF-8", raw_bytes(b"\xff\xfe{}")),
    ("binary/null with bytes", raw_bytes(b"\x00", b"binary/null")),
    ("binary/protobuf without a message type", raw_bytes(b"\x08\x01", b"binary/protobuf")),
    ("an unknown encoding", raw_bytes(b"{}", b"application/x-unknown")),
]
CATALOGUE.add("undecodable", *(f"{path} payload {kind}" for path in ("signal", "update", "start")
                               for kind, _ in UNDECODABLE), "signal with an unknown name",
              "start of another workflow type")


async def test_a_signal_that_does_not_decode_is_recorded_not_dropped(client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)

    for _, payload in UNDECODABLE:
        await handle.signal("add_funds", payload)
    await handle.signal("post_batch", raw_json('{"commands": ['))
    await handle.signal("close", raw_bytes(b"\x00", b"binary/null"))  # no id is made up for it
    after = await update(handle, "add_funds", cmd("f-1", 1))

    rows = await fetch_events(pool, account)
    rejections = rows[1:-1]
    assert [r.event_type for r in rows] == (
        ["ACCOUNT_CREATED"] + ["COMMAND_REJECTED"] * (len(UNDECODABLE) + 2) + ["FUND_ADDED"]), rows
    assert all(r.command_id is None and "cannot be decoded" in r.payload["reason"]
               for r in rejections), rejections
    assert [r.payload["command"] for r in rejections[-2:]] == ["post_batch", "close"]
    assert (after.version, after.balance, (await wait_settled(handle, after.version)).status) == (
        len(UNDECODABLE) + 4, 1, "open")
    await assert_no_failed_workflow_tasks(handle)


async def test_a_signal_with_an_unknown_name_is_recorded_without_its_command_id(
        client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)

    await handle.signal("transfer", cmd("r-1", 5))
    await handle.signal("Charge", args=[])
    # The id the unknown signal carried is not used up: the corrected command applies.
    after = await update(handle, "add_funds", cmd("r-1", 5))

    rows = await fetch_events(pool, account)
    assert [(r.event_type, r.command_id) for r in rows] == [
        ("ACCOUNT_CREATED", None), ("COMMAND_REJECTED", None), ("COMMAND_REJECTED", None),
        ("FUND_ADDED", "r-1")], rows
    assert "unknown signal 'transfer'" in rows[1].payload["reason"]
    assert "add_funds, charge, close, post_batch" in rows[1].payload["reason"]
    assert rows[1].payload["command"] == "transfer" and "r-1" in rows[1].payload["received"]
    assert "unknown signal 'Charge'" in rows[2].payload["reason"]
    assert (after.status, after.version, after.balance) == ("applied", 4, 5)
    await assert_no_failed_workflow_tasks(handle)


async def test_an_update_that_does_not_decode_is_an_invalid_command(client, task_queue, worker, pool):
    account = new_account_id()
    handle = await start_account(client, task_queue, account)

    for name in ("add_funds", "charge", "post_batch"):
        for kind, payload in UNDECODABLE:
            with pytest.raises(WorkflowUpdateFailedError) as info:
                await asyncio.wait_for(handle.execute_update(
                    name, payload, result_type=CommandOutcome), 10)
            cause = info.value.cause
            assert isinstance(cause, ApplicationError), (name, kind, cause)
            assert (cause.type, cause.non_retryable) == ("InvalidCommand", True), (name, kind, cause)
            assert "cannot be decoded" in cause.message, (name, kind, cause.message)

    assert await count_events(pool, account) == 1
    outcome = await update(handle, "add_funds", cmd("f-1", 1))
    assert (outcome.status, outcome.version) == ("applied", 2)
    await assert_no_failed_workflow_tasks(handle)


async def test_a_start_that_does_not_decode_fails_as_invalid_account(client, task_queue, worker, pool):
    async def start(kind: str, payload: RawValue) -> None:
        handle = await client.start_workflow(WORKFLOW_TYPE, payload,
                                             id=f"account-start-{uuid.uuid4().hex[:8]}",
                                             task_queue=task_queue)
        try:
            with pytest.raises(WorkflowFailureError) as info:
                await workflow_result(handle, timeout=STUCK_AFTER)
            cause = info.value.cause
            assert isinstance(cause, ApplicationError), (kind, cause)
            assert (cause.type, cause.non_retryable) == ("InvalidAccount", True), (kind, cause)
            assert "cannot be decoded" in cause.message, (kind, cause.message)
        finally:
            await terminate_all([handle])

    await asyncio.gather(*(start(kind, payload) for kind, payload in UNDECODABLE))
    assert await count_events(pool) == 0


async def test_a_start_of_another_workflow_type_is_left_to_a_worker_that_knows_it(
        client, task_queue, worker, pool):
    """The account workflow is the worker's dynamic workflow, so it is offered every type on its
    queue; it refuses the others by failing the workflow task (retried, as for a type no worker
    registers), never by failing a run that another worker version may know how to run."""
    handle = await client.start_workflow("RefundWorkflow", {"account_id": "x", "currency": "USD"},
                                         id=f"refund-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
    try:
        for _ in range(100):
            failed = await history_events(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
            if failed:
                break
            await asyncio.sleep(0.05)
        assert failed, "the workflow task never failed"
        assert "RefundWorkflow" in failed[0].workflow_task_failed_event_attributes.failure.message
        assert (await handle.describe()).status.name == "RUNNING"
    finally:
        await terminate_all([handle])
    assert await count_events(pool) == 0


def test_the_catalogue_has_at_least_30_kinds_of_bad_input():
    kinds = [f"{path}: {kind}" for path, found in CATALOGUE.kinds.items() for kind in found]
    assert len(kinds) == len(set(kinds)), "a kind is listed twice"
    summary = ", ".join(f"{path} {len(found)}" for path, found in CATALOGUE.kinds.items())
    print(f"\nbad-input catalogue: {len(kinds)} kinds tried ({summary})")
    assert len(kinds) >= 30


async def terminate_all(handles: list[WorkflowHandle]) -> None:
    """Stop workflows whose tasks keep failing, so they do not retry for the rest of the session."""
    for handle in handles:
        with contextlib.suppress(RPCError):  # it had ended
            await handle.terminate(reason="test over")


async def update_error(handle: WorkflowHandle, name: str, arg: Any, **options: Any) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await update(handle, name, arg, **options)
    assert isinstance(info.value.cause, ApplicationError), info.value.cause
    return info.value.cause


