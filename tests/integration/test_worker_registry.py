"""Other workflow types share the billing worker with the dynamic ``AccountWorkflow``.

The SDK looks a workflow type up among the named workflows first and falls back to the dynamic
one, so a named workflow registered beside it runs as itself, and accounts keep working.
"""

from __future__ import annotations

import uuid

from temporalio import workflow
from temporalio.api.enums.v1 import EventType

from tests.integration.helpers import (
    history_events,
    new_account_id,
    start_account,
    update,
    workflow_result,
)
from worker import WORKFLOWS, build_worker
from workflows.interface import CommandOutcome


@workflow.defn(name="Greeting", sandboxed=False)
class Greeting:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"hello {name}"


async def test_a_named_workflow_runs_beside_the_account_workflow(client, worker_pool, task_queue):
    async with build_worker(client, worker_pool, task_queue, workflows=[*WORKFLOWS, Greeting]):
        greeting = await client.start_workflow("Greeting", "acme", id=f"greet-{uuid.uuid4()}",
                                               task_queue=task_queue)
        account = await start_account(client, task_queue, new_account_id())
        outcome = await update(account, "add_funds", {"command_id": "f1", "amount": 5})

        assert await workflow_result(greeting) == "hello acme"
        assert outcome == CommandOutcome(command_id="f1", status="applied", balance=5, version=2)
        assert await history_events(account, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED) == []
