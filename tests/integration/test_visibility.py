"""What the Temporal web UI shows of an account: search attributes to find it by, the current
details to read it, and summaries. Checked through the same APIs the UI calls (list with a
query, describe, the metadata query); ``tests/e2e/test_temporal_ui.py`` opens the UI itself in a
browser."""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from client.account_client import AccountClient
from operations.search_attributes import create_command, ensure_search_attributes
from tests.integration.helpers import SETTLE_TIMEOUT, new_account_id
from workflows.interface import workflow_id
from workflows.visibility import SEARCH_ATTRIBUTES

METADATA_QUERY = "__temporal_workflow_metadata"


async def listed(client: Client, query: str, expected: set[str]) -> set[str]:
    """The workflow ids ``query`` lists, once they include ``expected`` (visibility lags)."""
    deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT
    while True:
        found = {execution.id async for execution in client.list_workflows(query)}
        if expected <= found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_accounts_are_found_by_status_and_balance_and_show_their_figures(client, task_queue, worker):
    accounts = AccountClient(client, task_queue)
    owing, positive = new_account_id(), new_account_id()
    await accounts.open(owing, "USD", overdraft_limit=5_000)
    await accounts.open(positive, "EUR")
    await accounts.charge(owing, 1_250, description="API calls")
    await accounts.add_funds(positive, 700)

    query = f'BillingStatus="open" AND BillingBalance < 0 AND BillingAccountId IN ("{owing}", "{positive}")'
    assert await listed(client, query, {workflow_id(owing)}) == {workflow_id(owing)}
    query = f'BillingCurrency="EUR" AND BillingAccountId="{positive}" AND BillingBalance = 700'
    assert await listed(client, query, {workflow_id(positive)}) == {workflow_id(positive)}

    handle = accounts.handle(owing)
    metadata = await handle.query(METADATA_QUERY)
    details = metadata.current_details
    assert f"Account {owing}" in details and "| -12.50 | 50.00 | USD | open | 2 |" in details
    assert "CHARGE_APPLIED -12.50" in details
    description = await handle.describe()
    assert await description.static_summary() == f"Account {owing}, USD"


async def test_a_closed_account_is_listed_as_closed(client, task_queue, worker):
    accounts = AccountClient(client, task_queue)
    account = new_account_id()
    await accounts.open(account, "USD")
    await accounts.close(account)
    await accounts.wait_for(account, lambda view: view.status == "closed", timeout=SETTLE_TIMEOUT)
    query = f'BillingStatus="closed" AND BillingAccountId="{account}"'
    assert await listed(client, query, {workflow_id(account)}) == {workflow_id(account)}


async def test_registering_is_idempotent_and_the_command_names_every_attribute(client):
    assert await ensure_search_attributes(client, client.namespace) == []  # the fixture did it
    command = create_command("billing")
    assert command.startswith("temporal operator search-attribute create --namespace billing")
    for key in SEARCH_ATTRIBUTES:
        assert f"--name {key.name} --type" in command
    assert "--name BillingBalance --type Int" in command

