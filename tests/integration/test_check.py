"""``billing check`` (``operations.reconcile``) against real Postgres and a real Temporal dev server.

Each test builds a small healthy ledger through the workflows, then corrupts one thing with
direct SQL (or terminates a workflow) and expects exactly one kind of finding, naming the
account and the field.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass

import pytest
from psycopg.types.json import Jsonb

from client import AccountClient, AccountClosedError, InsufficientFunds
from operations.reconcile import Finding, reconcile
from starter import cli
from workflows.interface import workflow_id


@dataclass(frozen=True)
class Ledger:
    """Three accounts: ``funded`` (USD, balance 700, v3), ``overdrawn`` (EUR, limit 500,
    balance -300, v4, one declined charge) and ``closed`` (v7: its 50 paid out at the close, the
    final invoice drafted and finalized, one rejection after its workflow ended)."""

    funded: str
    overdrawn: str
    closed: str
    events: int = 14


@pytest.fixture
def accounts(client, task_queue, worker) -> AccountClient:
    return AccountClient(client, task_queue)


@pytest.fixture
async def ledger(accounts: AccountClient) -> Ledger:
    # The dev server is shared by the whole session, so account ids must be unique.
    tag = uuid.uuid4().hex[:8]
    ledger = Ledger(f"funded-{tag}", f"overdrawn-{tag}", f"closed-{tag}")
    await asyncio.gather(_funded(accounts, ledger.funded), _overdrawn(accounts, ledger.overdrawn),
                         _closed(accounts, ledger.closed))
    return ledger


async def _funded(accounts: AccountClient, account_id: str) -> None:
    await accounts.open(account_id, "USD")
    await accounts.add_funds(account_id, 1_000, command_id="f-fund")
    await accounts.charge(account_id, 300, command_id="f-charge")


async def _overdrawn(accounts: AccountClient, account_id: str) -> None:
    await accounts.open(account_id, "EUR", overdraft_limit=500)
    await accounts.charge(account_id, 400, command_id="o-charge")
    with pytest.raises(InsufficientFunds):
        await accounts.charge(account_id, 200, command_id="o-declined")
    await accounts.add_funds(account_id, 100, command_id="o-fund")


async def _closed(accounts: AccountClient, account_id: str) -> None:
    await accounts.open(account_id, "USD")
    await accounts.add_funds(account_id, 50, command_id="c-fund")
    await accounts.close(account_id, command_id="c-close", reason="test", payout=True)
    await asyncio.wait_for(accounts.handle(account_id).result(), 30)  # the closed run ends
    with pytest.raises(AccountClosedError):  # revives it, and is recorded as a rejection
        await accounts.add_funds(account_id, 5, command_id="c-late")


async def insert_event(pool, account_id: str, version: int, event_type: str, payload: dict,
                       command_id: str | None) -> None:
    """Write straight into the log, as a buggy or malicious writer could (INSERT is allowed)."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO account_events (event_id, account_id, version, event_type, payload,"
            " command_id) VALUES (%s, %s, %s, %s, %s, %s)",
            (uuid.uuid4(), account_id, version, event_type, Jsonb(payload), command_id))


async def sql(pool, statement: str, *params) -> None:
    async with pool.connection() as conn:
        await conn.execute(statement, params)


def fields(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(finding.account_id, finding.field) for finding in findings]


async def test_a_healthy_ledger_reconciles(ledger, pool, client):
    report = await reconcile(pool, temporal_client=client)

    assert report.findings == []
    assert report.ok
    assert (report.accounts_checked, report.events_checked, report.workflows_checked) == (
        3, ledger.events, 2)  # the closed account's workflow is not compared


async def test_tampered_balance(ledger, pool):
    await sql(pool, "UPDATE accounts SET balance = balance + 1 WHERE account_id = %s", ledger.funded)

    report = await reconcile(pool)

    assert [finding.model_dump() for finding in report.findings] == [{
        "account_id": ledger.funded, "field": "accounts.balance", "expected": 700, "actual": 701,
        "detail": "folded from the log"}]


async def test_projection_row_deleted_while_events_remain(ledger, pool):
    await sql(pool, "DELETE FROM accounts WHERE account_id = %s", ledger.overdrawn)

    report = await reconcile(pool)

    assert fields(report.findings) == [(ledger.overdrawn, "accounts.row")]
    assert report.accounts_checked == 3


async def test_projection_row_without_events(ledger, pool):
    await sql(pool, "INSERT INTO accounts (account_id, currency, version) VALUES ('ghost', 'USD', 2)")

    report = await reconcile(pool)

    assert fields(report.findings) == [("ghost", "events")]
    assert report.accounts_checked == 4


async def test_gap_in_versions(ledger, pool):
    await insert_event(pool, ledger.funded, 5, "FUND_ADDED", {"amount": 5}, "gap")

    report = await reconcile(pool)

    assert fields(report.findings) == [(ledger.funded, "versions")]
    assert (report.findings[0].expected, report.findings[0].actual) == ("1..4", "1..5")


async def test_running_balance_below_the_overdraft_limit_midway(ledger, pool):
    # Dips to 700 - 10,000 at version 4, back to 700 at version 5: the final balance is fine,
    # and the accounts row is made to match, so only the running-balance check can see it.
    await insert_event(pool, ledger.funded, 4, "CHARGE_APPLIED", {"amount": 10_000}, "big")
    await insert_event(pool, ledger.funded, 5, "FUND_ADDED", {"amount": 10_000}, "refill")
    await sql(pool, "UPDATE accounts SET version = 5 WHERE account_id = %s", ledger.funded)

    report = await reconcile(pool)

    assert [finding.model_dump() for finding in report.findings] == [{
        "account_id": ledger.funded, "field": "running_balance", "expected": ">= 0",
        "actual": -9_300, "detail": "after CHARGE_APPLIED at version 4"}]


async def test_command_applied_twice(ledger, pool):
    # UNIQUE(account_id, command_id) makes this impossible; drop it to prove the check sees it.
    await sql(pool, "ALTER TABLE account_events DROP CONSTRAINT one_event_per_command")
    await insert_event(pool, ledger.funded, 4, "FUND_ADDED", {"amount": 1_000}, "f-fund")
    await sql(pool, "UPDATE accounts SET version = 4, balance = 1700 WHERE account_id = %s",
              ledger.funded)

    report = await reconcile(pool)

    assert fields(report.findings) == [(ledger.funded, "command_id")]
    assert report.findings[0].detail == "f-fund at versions [2, 4]"


async def test_charge_without_command_id(ledger, pool):
    await insert_event(pool, ledger.funded, 4, "CHARGE_APPLIED", {"amount": 1}, None)

    report = await reconcile(pool)

    assert fields(report.findings) == [(ledger.funded, "command_id")]


async def test_only_the_requested_accounts_are_checked(ledger, pool):
    await sql(pool, "UPDATE accounts SET balance = 1 WHERE account_id = %s", ledger.funded)

    report = await reconcile(pool, account_ids=[ledger.overdrawn, ledger.closed, "nobody"])

    assert fields(report.findings) == [("nobody", "account")]
    assert (report.accounts_checked, report.events_checked) == (2, 11)


async def test_terminated_workflow_of_an_open_account(ledger, pool, client):
    await client.get_workflow_handle(workflow_id(ledger.funded)).terminate(reason="test")

    report = await reconcile(pool, temporal_client=client, recheck_delay=0.05)

    assert [finding.model_dump() for finding in report.findings] == [{
        "account_id": ledger.funded, "field": "workflow", "expected": "RUNNING",
        "actual": "TERMINATED", "detail": "workflow not running"}]


async def test_workflow_behind_its_log(ledger, pool, client):
    # An event the workflow never wrote: the log and projection agree, the workflow does not.
    await insert_event(pool, ledger.overdrawn, 5, "FUND_ADDED", {"amount": 50}, "sneaked-in")
    await sql(pool, "UPDATE accounts SET version = 5, balance = -250 WHERE account_id = %s",
              ledger.overdrawn)

    report = await reconcile(pool, temporal_client=client, recheck_delay=0.05)

    assert [(f.field, f.expected, f.actual) for f in report.findings] == [
        ("workflow.balance", -250, -300), ("workflow.version", 5, 4)]
    assert {f.account_id for f in report.findings} == {ledger.overdrawn}


def test_cli_exit_codes_and_json(db_url, pg_server_url, monkeypatch, capsys):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert cli.run(["check", "--no-workflows"]) == 2
    assert "DATABASE_URL" in capsys.readouterr().err

    monkeypatch.setenv("DATABASE_URL", db_url)
    assert cli.run(["check", "--no-workflows", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True

    assert cli.run(["check", "--no-workflows", "--account", "nobody"]) == 1
    assert "account nobody: account expected a log or a row, got None" in capsys.readouterr().out

    assert cli.run(["check", "--bogus"]) == 2

    monkeypatch.setenv("DATABASE_URL", pg_server_url)  # a server without the event log
    assert cli.run(["check", "--no-workflows"]) == 2
    assert "no event log yet" in capsys.readouterr().err


async def test_cli_compares_the_workflows_too(ledger, db_url, temporal_env, task_queue,
                                              monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", temporal_env.client.service_client.config.target_host)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", temporal_env.client.namespace)
    monkeypatch.setenv("BILLING_TASK_QUEUE", task_queue)
    # cli.run owns its event loop, as the process does: run it beside this test's loop.
    code = await asyncio.to_thread(cli.run, ["check", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["workflows_checked"] == 2 and report["ok"]


async def test_a_ledger_in_use_reconciles(ledger, accounts, pool, client):
    # Commands keep arriving while the check runs: its snapshot of the log is behind the
    # workflow by the time it queries, which must not be reported.
    async def traffic() -> None:
        for i in range(40):
            await accounts.add_funds(ledger.funded, 1, command_id=f"live-{i}")

    running = asyncio.create_task(traffic())
    reports = []
    while not running.done():
        reports.append(await reconcile(pool, temporal_client=client, recheck_delay=0.1))
    await running

    assert [finding.line() for report in reports for finding in report.findings] == []
    assert len(reports) > 1
