"""The replay's activity: ``operations.replay.rebuild`` with its progress as heartbeats.

It connects with the owner's URL (the shadow tables and the swap need the tables' owner), so
it runs on the operations task queue, in a worker that holds those credentials.
"""

from __future__ import annotations

import time

import psycopg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from operations.replay.rebuild import Progress, rebuild
from operations.replay.scan import CorruptLog
from projections import by_name
from workflows.replay import CORRUPT_LOG, REBUILD, ReplayInput, ReplayProgress, ReplayResult


class Replayer:
    """The replay activity, bound to the owner's database URL."""

    def __init__(self, owner_url: str) -> None:
        self._url = owner_url

    @activity.defn(name=REBUILD)
    async def rebuild_projections(self, request: ReplayInput) -> ReplayResult:
        started = time.monotonic()
        projections = [by_name(name) for name in request.projections]
        async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
            try:
                done = await rebuild(conn, projections, chunk=request.chunk, on_progress=_heartbeat)
            except CorruptLog as error:
                raise ApplicationError(str(error), type=CORRUPT_LOG, non_retryable=True) from None
        return ReplayResult(projections=request.projections, events=done.events_done,
                            seconds=round(time.monotonic() - started, 3))


def _heartbeat(progress: Progress) -> None:
    activity.heartbeat(ReplayProgress(phase=progress.phase, events_done=progress.events_done,
                                      events_total=progress.events_total,
                                      account_id=progress.account_id))
