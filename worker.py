"""The billing worker: runs the account workflows and the event-store activities.

    DATABASE_URL=postgresql://billing_worker@host/billing \\
    BILLING_MIGRATION_URL=postgresql://billing_owner@host/billing python worker.py
    BILLING_MIGRATION_URL=postgresql://billing_owner@host/billing python worker.py --migrate  # and exit

At start it waits for Postgres and then Temporal (capped backoff, one log line per attempt,
``BILLING_STARTUP_TIMEOUT`` in all), applies pending migrations as the owner if it has the
owner's URL (safe when several workers start at once), checks that the database is migrated and
that its own role cannot change the event log, registers the account workflow's search
attributes if the namespace lacks them, then polls ``BILLING_TASK_QUEUE`` until SIGINT or
SIGTERM, when it finishes in-flight work, stops, and closes its connection pool. With
``BILLING_METRICS_PORT`` set it serves Prometheus metrics, the SDK's and ours (``telemetry``).
See ``config.py`` for every setting. Exit codes: 0 stopped when asked, 1 a service still
unavailable at the deadline (or the worker failed), 2 configuration (a metrics port taken too)
or an unmigrated database.
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

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.billing import BillingActivities
from activities.db import DatabaseNotReady
from activities.event_store import EventStore
from activities.snapshots import DEFAULT_EVERY as DEFAULT_SNAPSHOT_EVERY
from config import ConfigError, Settings
from operations.startup import Startup
from outages.dependencies import (
    Stopped,
    Unavailable,
)
from projections import PROJECTIONS
from projections.runner import ProjectionRunner
from telemetry import lag, logs, runtime
from workflows.account import AccountWorkflow

log = logging.getLogger("billing.worker")


WORKFLOWS: list[type] = [AccountWorkflow]
"""Every workflow type the worker runs. ``AccountWorkflow`` is the dynamic one: named types
listed beside it take precedence (docs/decisions.md, "Raw payloads")."""


def build_worker(client: Client, pool: AsyncConnectionPool, task_queue: str, *,
                 sandboxed: bool = True, workflows: Sequence[type] = WORKFLOWS,
                 snapshot_every: int = DEFAULT_SNAPSHOT_EVERY, invoice_prefix: str = "INV-",
                 credit_note_prefix: str = "CN-", **options: Any) -> Worker:
    """The worker for ``task_queue``, with every workflow and activity of the service.

    ``sandboxed`` runs the workflows in the SDK's sandbox, which refuses non-deterministic
    calls; the tests keep it on, the service's worker turns it off unless
    ``BILLING_WORKFLOW_SANDBOX=1`` (docs/decisions.md, "outside the sandbox")."""
    return Worker(
        client,
        task_queue=task_queue,
        workflow_runner=SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner(),
        workflows=list(workflows),
        activities=[*EventStore(pool, snapshot_every=snapshot_every).activities,
                    *BillingActivities(pool, invoice_prefix=invoice_prefix,
                                       credit_note_prefix=credit_note_prefix).activities],
        graceful_shutdown_timeout=timedelta(seconds=10),
        disable_payload_error_limit=True,  # docs/decisions.md, "Oversized updates"
        **options,
    )


async def serve(settings: Settings) -> None:
    """Wait for the services, then run the worker until SIGINT or SIGTERM. Raises
    ``Unavailable`` if Postgres or Temporal is still away at the deadline."""
    stop = _stop_on_signals()
    runtime.start(settings)  # before any client: the metrics endpoint, if asked for
    startup = Startup(settings, stop)
    try:
        pool = await startup.database()
    except Stopped:
        log.info("stopped before serving")
        return
    try:
        client = await startup.temporal()
        async with build_worker(client, pool, settings.task_queue,
                                sandboxed=settings.workflow_sandbox,
                                snapshot_every=settings.snapshot_every,
                                invoice_prefix=settings.invoice_prefix,
                                credit_note_prefix=settings.credit_note_prefix):
            log.info("worker polling task queue %r on %s (namespace %s)%s", settings.task_queue,
                     settings.temporal_address, settings.temporal_namespace,
                     ", workflows sandboxed" if settings.workflow_sandbox else "")
            # Once serving, outages are ridden out below us: activities retry, the SDK retries
            # its polls, the pool reconnects, the projections pause.
            projections = _projections(settings, pool, stop)
            await stop.wait()
            log.info("stopping: finishing in-flight work")
            await projections
    except Stopped:
        log.info("stopped before serving")
    finally:
        await pool.close()
    log.info("stopped")


def _projections(settings: Settings, pool: AsyncConnectionPool, stop: asyncio.Event) -> asyncio.Future[Any]:
    """The projection runner in the background (done at once when ``BILLING_PROJECTIONS=0``),
    and with metrics on, the sampling of its lag."""
    if not settings.projections:
        return asyncio.ensure_future(asyncio.sleep(0))
    url, role = settings.require_database_url(), settings.database_role

    async def listener() -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        if role:
            await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        return conn

    log.info("projections running: %s", ", ".join(p.name for p in PROJECTIONS))
    running = [ProjectionRunner(pool, PROJECTIONS).run(stop, listener)]
    if settings.metrics_port is not None:
        running.append(lag.keep_sampling(pool, stop))
    return asyncio.gather(*running)


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, at any point from here on."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def migrate_only(settings: Settings) -> None:
    """``--migrate``: wait for Postgres, apply pending migrations as the owner, and return."""
    try:
        await Startup(settings, _stop_on_signals()).migrate()
    except Stopped:
        log.info("stopped before migrating")


def main(argv: list[str] | None = None) -> int:
    arguments = argparse.ArgumentParser(
        description="Run the billing worker (account workflows and event-store activities).",
        epilog="Settings come from DATABASE_URL, BILLING_MIGRATION_URL, TEMPORAL_ADDRESS, "
               "TEMPORAL_NAMESPACE, BILLING_TASK_QUEUE, BILLING_STARTUP_TIMEOUT, BILLING_DB_ROLE, "
               "BILLING_WORKFLOW_SANDBOX, BILLING_METRICS_PORT and BILLING_LOG_FORMAT (see config.py). "
               "Exit codes: 0 stopped, 1 a service still unavailable after BILLING_STARTUP_TIMEOUT "
               "(or a failure), 2 configuration.",
    )
    arguments.add_argument("--migrate", action="store_true",
                           help="apply pending migrations with BILLING_MIGRATION_URL, then exit")
    args = arguments.parse_args(argv)
    logs.configure("text")
    try:
        settings = Settings.from_env()
        logs.configure(settings.log_format)
        asyncio.run(migrate_only(settings) if args.migrate else serve(settings))
        return 0
    except (ConfigError, DatabaseNotReady) as error:
        log.error("worker cannot start: %s", error)
        return 2
    except Unavailable as error:  # supervisors (compose, systemd, starter up) start it again
        log.error("worker gave up waiting: %s", error)
        return 1
    except Exception as error:  # a last word for the operator, then exit non-zero
        log.error("worker failed: %s", error, exc_info=True)
        return 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalization: the Temporal client's native runtime can abort it
    # (temporalio/sdk-python#300).
    os._exit(code)
