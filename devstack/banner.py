"""What ``starter up`` prints once the stack is up: where everything runs and how to use it."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from config import Settings

if TYPE_CHECKING:
    from devstack.up import Stack

READY_LINE = "billing dev stack is up"


def announce(stack: Stack, settings: Settings) -> None:
    """Print where everything runs and how to use it from another shell."""
    python = _display_path(Path(sys.executable))
    exports = {"DATABASE_URL": stack.database_url, "TEMPORAL_ADDRESS": stack.temporal_address}
    if settings.temporal_namespace != Settings.default("temporal_namespace"):
        exports["TEMPORAL_NAMESPACE"] = settings.temporal_namespace
    if settings.task_queue != Settings.default("task_queue"):
        exports["BILLING_TASK_QUEUE"] = settings.task_queue
    lines = [
        "",
        READY_LINE,
        f"  Postgres     {stack.database_url}  ({stack.postgres_where})",
        f"  Temporal     {stack.temporal_address}, namespace {settings.temporal_namespace}"
        + (f"  (dev server pid {stack.dev_server.process.pid}, log {stack.dev_server.log_path})"
           if stack.dev_server else "  (not started here)"),
        f"  Web UI       {stack.ui_url or 'not started here (use your server UI)'}",
        f"  Worker       pid {stack.worker.process.pid}, task queue {settings.task_queue}"
        "  (started again if it exits)",
        f"  HTTP API     {stack.http_url}  (docs {stack.http_url}/docs)" if stack.http_url
        else "  HTTP API     not started (--no-http)",
        f"  Kafka        {stack.kafka}, topics billing.account-events and billing.invoices "
        "(the relay publishes the log)" if stack.kafka
        else "  Kafka        not started (make run RUN_ARGS=--kafka starts a broker and the relay)",
        f"  Metrics      {stack.metrics_url}  (worker: Temporal SDK + billing_*)"
        + (f", {stack.http_url}/metrics  (gateway)" if stack.http_url else ""),
        "",
        "Try it from another shell in this directory:",
        *(f"  export {name}={shlex.quote(value)}" for name, value in exports.items()),
        f"  {python} -m starter open acme --currency USD",
        f"  {python} -m starter fund acme 100.00",
        f"  {python} -m starter charge acme 12.50",
        f"  {python} -m starter balance acme",
        f"  {python} -m starter history acme --json",
        *([f"  curl -s {stack.http_url}/accounts/acme"] if stack.http_url else []),
        *([f"  KAFKA_BOOTSTRAP_SERVERS={stack.kafka} {python} -m starter kafka tail --from-beginning"]
          if stack.kafka else []),
        "",
        "Press Ctrl-C to stop everything started here.",
    ]
    print("\n".join(lines), flush=True)



def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


