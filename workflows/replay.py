"""``ReplayWorkflow``: a full replay as a workflow, so that it shows in the web UI, survives a
worker's death and resumes from its last checkpoint.

It runs one long activity (``rebuild_projections``) that heartbeats its progress; the activity
commits that progress with the rows it covers, so a retry on another worker, or the same one
started again, goes on where the last attempt stopped. A corrupt log fails it at once.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

REPLAY_WORKFLOW = "ReplayWorkflow"
REBUILD = "rebuild_projections"
CORRUPT_LOG = "CorruptEventLog"
OPERATIONS_TASK_QUEUE = "billing-operations"
"""Where the operations run: a worker holding the tables' owner's credentials, which the CLI
starts for the duration of a replay (``python -m starter replay``)."""


class ReplayInput(BaseModel):
    projections: list[str] = Field(min_length=1)
    chunk: int = Field(default=10_000, ge=1)


class ReplayResult(BaseModel):
    projections: list[str]
    events: int
    seconds: float


class ReplayProgress(BaseModel):
    """The activity's heartbeat: where it is, for the CLI's progress bar and the web UI."""

    phase: str
    events_done: int
    events_total: int
    account_id: str = ""


@workflow.defn(name=REPLAY_WORKFLOW)
class ReplayWorkflow:
    @workflow.run
    async def run(self, request: ReplayInput) -> ReplayResult:
        result: ReplayResult = await workflow.execute_activity(
            REBUILD, request, result_type=ReplayResult,
            start_to_close_timeout=timedelta(days=1),
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30),
                                     non_retryable_error_types=[CORRUPT_LOG]),
            summary=f"rebuild {', '.join(request.projections)}")
        return result
