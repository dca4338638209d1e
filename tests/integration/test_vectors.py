"""The shared test vectors (``tests/vectors/*.json``) through a plain Temporal client.

Plain means the SDK's default JSON converter, as the Go and TypeScript SDKs have, and no
``AccountClient``: what passes here is what the wire promises to any language. Every answer
and every error detail is also validated against its committed JSON Schema (``schemas/``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.vectors import (
    Outcome,
    answer_schema,
    fresh_account_id,
    load,
    mismatches,
    validator,
    vector_files,
)

STEP_TIMEOUT = 10.0
# The *_with_start kinds (tests/vectors/README.md): join the running workflow of that id, or start
# a new run after a finished one (a closed account's run ends once drained).
WITH_START_POLICIES: dict[str, Any] = {"id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
                                       "id_reuse_policy": WorkflowIDReusePolicy.ALLOW_DUPLICATE}


@pytest.fixture
async def plain_client(temporal_env: WorkflowEnvironment) -> Client:
    config = temporal_env.client.service_client.config
    return await Client.connect(config.target_host, namespace=temporal_env.client.namespace)


@pytest.mark.parametrize("path", vector_files(), ids=lambda path: path.stem)
async def test_vector(path: Path, plain_client: Client, worker: Worker, task_queue: str) -> None:
    vector = load(path, fresh_account_id("py", path.stem))
    handle = plain_client.get_workflow_handle(vector["workflow_id"])
    for number, step in enumerate(vector["steps"], start=1):
        outcome = await asyncio.wait_for(run_step(plain_client, handle, task_queue, step), STEP_TIMEOUT)
        where = f"{path.name} step {number} ({step['about']})"
        assert mismatches(step, outcome) == [], f"{where}: {outcome.describe()}"
        schema = answer_schema(step, outcome)
        if schema is not None:
            answer = outcome.details if outcome.error_type else outcome.result
            problems = [error.message for error in validator(schema).iter_errors(answer)]
            assert problems == [], f"{where}: the answer does not fit {schema}: {problems}"


async def run_step(client: Client, handle: WorkflowHandle, task_queue: str,
                   step: dict[str, Any]) -> Outcome:
    """Send one step's message the way any SDK would: by name, with zero or one JSON argument."""
    args = [step["payload"]] if "payload" in step else []
    if step["kind"] == "start":
        await client.start_workflow(step["name"], args=args, id=handle.id, task_queue=task_queue)
        return Outcome()
    if step["kind"] == "signal":
        await handle.signal(step["name"], args=args)
        return Outcome()
    if step["kind"] == "signal_with_start":
        start = step["start"]
        await client.start_workflow(start["name"], args=[start["payload"]], id=handle.id,
                                    task_queue=task_queue, start_signal=step["name"],
                                    start_signal_args=args, **WITH_START_POLICIES)
        return Outcome()
    if step["kind"] == "query":
        return Outcome(result=await handle.query(step["name"], args=args))
    try:
        if step["kind"] == "update_with_start":
            start = step["start"]
            operation: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
                start["name"], args=[start["payload"]], id=handle.id, task_queue=task_queue,
                **WITH_START_POLICIES)
            return Outcome(result=await client.execute_update_with_start_workflow(
                step["name"], args=args, start_workflow_operation=operation))
        return Outcome(result=await handle.execute_update(step["name"], args=args))
    except WorkflowUpdateFailedError as failure:
        error = failure.cause
        assert isinstance(error, ApplicationError), f"not an ApplicationError: {error!r}"
        return Outcome(error_type=error.type, details=error.details[0] if error.details else None)
