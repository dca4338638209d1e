"""The account workflow's metrics on a real dev server, through a runtime that serves them:
commands are counted once, when decided live, and never again when a new worker replays the
history (the workflow's meter skips replays); the sandbox lets the recording through. Runs
revived from the log are counted by what the log held.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig
from temporalio.testing import WorkflowEnvironment

from client import AccountClient, AccountNotFound
from telemetry import runtime
from tests.integration.helpers import new_account_id, start_account, update
from worker import build_worker

Counts = dict[tuple[str, frozenset[tuple[str, str]]], float]
OURS = {"kind", "outcome", "status"}


def scrape(url: str) -> Counts:
    text = httpx.get(url, timeout=10).raise_for_status().text
    return {(sample.name, frozenset((k, v) for k, v in sample.labels.items() if k in OURS)): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def total(counts: Counts, name: str, **labels: str) -> float:
    """The sum of ``name``'s series that carry ``labels``."""
    wanted = set(labels.items())
    return sum(value for (sample, found), value in counts.items() if sample == name and wanted <= found)


async def served_client(temporal_env: WorkflowEnvironment) -> tuple[Client, str]:
    """A client on a runtime of its own that serves metrics; the URL they are at."""
    served, address = runtime._serving("127.0.0.1", 0, LoggingConfig.default)
    config = temporal_env.client.service_client.config
    client = await Client.connect(config.target_host, namespace=temporal_env.client.namespace,
                                  runtime=served, data_converter=pydantic_data_converter)
    return client, f"http://{address}/metrics"


async def test_commands_are_counted_when_decided_and_not_again_on_replay(
        temporal_env: WorkflowEnvironment, worker_pool, task_queue: str) -> None:
    client, url = await served_client(temporal_env)
    account_id = new_account_id()
    async with build_worker(client, worker_pool, task_queue):  # sandboxed, as in every test
        account = await start_account(client, task_queue, account_id)
        await update(account, "add_funds", {"command_id": "f1", "amount": 5})
        await update(account, "add_funds", {"command_id": "f1", "amount": 5})
        await update(account, "charge", {"command_id": "c1", "amount": 2})
    first = scrape(url)
    assert total(first, "billing_commands_total", kind="open", outcome="applied") == 1
    assert total(first, "billing_commands_total", kind="add_funds", outcome="applied") == 1
    assert total(first, "billing_commands_total", kind="add_funds", outcome="duplicate") == 1
    assert total(first, "billing_commands_total", kind="charge", outcome="applied") == 1
    assert total(first, "billing_batch_commands_sum") == 4
    assert total(first, "billing_append_seconds_count") == 3  # the duplicate appends nothing

    # A new worker has nothing cached: its first task replays the whole history first.
    async with build_worker(client, worker_pool, task_queue):
        await update(account, "charge", {"command_id": "c2", "amount": 1})
    second = scrape(url)
    assert total(second, "temporal_workflow_task_replay_latency_count") > total(
        first, "temporal_workflow_task_replay_latency_count"), "the history was replayed"
    assert total(second, "billing_commands_total") - total(first, "billing_commands_total") == 1
    assert total(second, "billing_commands_total", kind="charge", outcome="applied") == 2
    assert total(second, "billing_batch_commands_sum") == 5


async def test_revived_runs_are_counted_by_what_the_log_held(
        temporal_env: WorkflowEnvironment, worker_pool, task_queue: str) -> None:
    client, url = await served_client(temporal_env)
    accounts = AccountClient(client, task_queue, rpc_timeout=60)
    account_id, ghost = new_account_id(), new_account_id()
    async with build_worker(client, worker_pool, task_queue):
        await accounts.open(account_id, "USD")
        await accounts.handle(account_id).terminate(reason="test: gone while open")
        await accounts.add_funds(account_id, 5, command_id="f1")  # update-with-start revives it
        await accounts.add_funds(account_id, 5, command_id="f2")  # running again: nothing revived
        with pytest.raises(AccountNotFound):
            await accounts.add_funds(ghost, 5, command_id="g1")
    counts = scrape(url)
    assert accounts.revived == 2
    assert total(counts, "billing_workflows_revived_total", status="open") == 1
    assert total(counts, "billing_workflows_revived_total", status="missing") == 1
    assert total(counts, "billing_workflows_revived_total") == 2
