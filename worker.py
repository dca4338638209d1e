"""The billing worker: runs the account workflows and the event-store activities.

    DATABASE_URL=postgresql://... python worker.py

Applies pending migrations at start (safe when several workers start at once), then polls
``BILLING_TASK_QUEUE`` until SIGINT or SIGTERM, when it finishes in-flight work, stops, and
closes its connection pool. See ``config.py`` for every setting.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.db import migrate, open_pool
from activities.event_store import EventStore
from config import ConfigError, Settings, connect_temporal
from workflows.account import AccountWorkflow

log = logging.getLogger("billing.worker")


WORKFLOWS: list[type] = [AccountWorkflow]
"""Every workflow type the worker runs. ``AccountWorkflow`` is the dynamic one: named types
listed beside it take precedence (docs/decisions.md, "Raw payloads")."""


def build_worker(client: Client, pool: AsyncConnectionPool, task_queue: str, *,
                 sandboxed: bool = True, workflows: Sequence[type] = WORKFLOWS,
                 **options: Any) -> Worker:
    """The worker for ``task_queue``, with every workflow and activity of the service.

    ``sandboxed`` runs the workflows in the SDK's sandbox, which refuses non-deterministic
    calls; the tests keep it on, the service's worker turns it off unless
    ``BILLING_WORKFLOW_SANDBOX=1`` (docs/decisions.md, "outside the sandbox")."""
    return Worker(
        client,
        task_queue=task_queue,
        workflow_runner=SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner(),
        workflows=list(workflows),
        activities=EventStore(pool).activities,
        graceful_shutdown_timeout=timedelta(seconds=10),
        disable_payload_error_limit=True,  # docs/decisions.md, "Oversized updates"
        **options,
    )


async def serve(settings: Settings) -> None:
    database_url = settings.require_database_url()
    applied = await migrate(database_url)
    log.info("migrations applied: %s", ", ".join(applied) or "none pending")
    pool = open_pool(database_url, role=settings.database_role)
    await pool.open(wait=True)
    try:
        client = await connect_temporal(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with build_worker(client, pool, settings.task_queue,
                                sandboxed=settings.workflow_sandbox):
            log.info("worker polling task queue %r on %s (namespace %s)%s", settings.task_queue,
                     settings.temporal_address, settings.temporal_namespace,
                     ", workflows sandboxed" if settings.workflow_sandbox else "")
            await stop.wait()
            log.info("stopping: finishing in-flight work")
    finally:
        await pool.close()
    log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        description="Run the billing worker (account workflows and event-store activities).",
        epilog="Settings come from DATABASE_URL, TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, "
               "BILLING_TASK_QUEUE, BILLING_DB_ROLE and BILLING_WORKFLOW_SANDBOX (see config.py).",
    ).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(Settings.from_env()))
        return 0
    except Exception as error:  # a last word for the operator, then exit non-zero
        log.error("worker failed: %s", error, exc_info=not isinstance(error, ConfigError))
        return 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalization: the Temporal client's native runtime can abort it
    # (temporalio/sdk-python#300).
    os._exit(code)
