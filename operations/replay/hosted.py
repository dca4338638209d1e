"""A full replay as a Temporal workflow, hosted for its duration by the process that asks for
it: a worker on the operations task queue with the tables' owner's credentials runs
``ReplayWorkflow`` and its activity, while the caller follows the activity's heartbeats.

Starting a replay that is already running attaches to it; one left behind by a process that
died resumes on this worker once its activity's heartbeat times out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from activities.replay import Replayer
from workflows.replay import (
    OPERATIONS_TASK_QUEUE,
    REPLAY_WORKFLOW,
    ReplayInput,
    ReplayProgress,
    ReplayResult,
    ReplayWorkflow,
)

POLL = 0.5


def workflow_id(projections: Sequence[str]) -> str:
    return "billing-replay-" + "-".join(sorted(projections))


async def run_replay(client: Client, owner_url: str, projections: Sequence[str], *,
                     follow: Callable[[ReplayProgress], Any] | None = None,
                     task_queue: str = OPERATIONS_TASK_QUEUE) -> ReplayResult:
    """Run (or resume) the replay of ``projections`` and return its result."""
    async with Worker(client, task_queue=task_queue, workflows=[ReplayWorkflow],
                      activities=[Replayer(owner_url).rebuild_projections]):
        handle = await client.start_workflow(
            REPLAY_WORKFLOW, ReplayInput(projections=list(projections)),
            id=workflow_id(projections), task_queue=task_queue, result_type=ReplayResult,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
        watcher = asyncio.ensure_future(_watch(client, handle, follow)) if follow else None
        try:
            return await handle.result()
        finally:
            if watcher is not None:
                watcher.cancel()


async def _watch(client: Client, handle: WorkflowHandle[Any, Any],
                 follow: Callable[[ReplayProgress], Any]) -> None:
    converter = client.data_converter.payload_converter
    while True:
        description = await handle.describe()
        for pending in description.raw_description.pending_activities:
            payloads = pending.heartbeat_details.payloads
            if payloads:
                follow(converter.from_payloads(payloads, [ReplayProgress])[0])
        await asyncio.sleep(POLL)
