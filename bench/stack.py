"""The services one benchmark run uses: a fresh embedded Postgres (fsync on), a file-backed
Temporal dev server and one worker process, all on this machine, all stopped at the end."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from temporalio.client import Client

from config import Settings, connect_temporal
from devstack import postgres, processes, temporal
from devstack.temporal import DevServer


@dataclass
class Stack:
    database_url: str
    server_url: str
    temporal: Client
    settings: Settings
    worker: processes.WorkerProcess
    dev_server: DevServer  # not temporal.DevServer: the field `temporal` shadows the module here
    worker_env: dict[str, str]

    async def restart_worker(self, **overrides: str) -> None:
        """A new worker process in place of the running one, with these settings changed."""
        self.worker.stop()
        self.worker = processes.start_worker({**self.worker_env, **overrides}, echo=False)
        await asyncio.to_thread(self.worker.wait_ready, 60)

    def durability(self) -> str:
        with psycopg.connect(self.database_url) as conn:
            fsync, commit = (_show(conn, name) for name in ("fsync", "synchronous_commit"))
        pragmas = " ".join(temporal.SQLITE_PRAGMAS)
        return (f"Postgres fsync={fsync} synchronous_commit={commit}; "
                f"dev server SQLite file ({pragmas})")

    def new_database(self, name: str) -> str:
        postgres.create_database(self.server_url, name)
        return self.server_url.replace("/postgres?", f"/{name}?")


def _show(conn: psycopg.Connection, name: str) -> str:
    """The value of the server setting ``name``."""
    row = conn.execute(f"SHOW {name}").fetchone()
    assert row is not None  # SHOW always returns one row
    return row[0]


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@asynccontextmanager
async def running_stack(keep: bool = False) -> AsyncIterator[Stack]:
    """Start Postgres, the dev server and a worker in a temporary folder; stop them after."""
    root = Path(tempfile.mkdtemp(prefix="billing-bench-"))
    os.chmod(root, 0o755)  # the embedded Postgres runs as its own user and must reach its data
    database = postgres.start_postgres(root / "postgres", "billing")
    dev_server = None
    worker = None
    try:
        port = _free_port()
        dev_server = temporal.start_temporal_dev_server(root, port, _free_port(), "default")
        await asyncio.to_thread(temporal.wait_for_temporal, dev_server.address, "default", 60, dev_server)
        settings = Settings(database_url=database.url, temporal_address=dev_server.address,
                            task_queue="billing-bench")
        env = dict(os.environ, DATABASE_URL=database.url, BILLING_MIGRATION_URL=database.owner_url,
                   TEMPORAL_ADDRESS=dev_server.address, BILLING_TASK_QUEUE=settings.task_queue)
        worker = processes.start_worker(env, echo=False)
        await asyncio.to_thread(worker.wait_ready, 60)
        # The benchmark reads, and sets up its baseline databases, as the server's superuser.
        server_url = database.admin_url.replace("/billing?", "/postgres?")
        stack = Stack(database.admin_url, server_url, await connect_temporal(settings), settings,
                      worker, dev_server, env)
        yield stack
        worker = stack.worker  # it may have been restarted
    finally:
        for stop in (worker and worker.stop, dev_server and dev_server.stop, database.stop):
            if stop:
                stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
