"""A worker started while Postgres or Temporal is down, or that loses Postgres in the middle of
its migrations, waits (one log line per attempt, capped backoff) and serves once the service is
back, as the same process; commands sent meanwhile are neither lost nor applied twice. After
``BILLING_STARTUP_TIMEOUT`` it gives up with exit code 1 and the reason, so that a supervisor
starts it again; a worker given the owner's login refuses to start at all (exit code 2)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import psycopg

from activities.db import MIGRATION_LOCK
from devstack import ROOT
from devstack.processes import WorkerProcess
from tests.faults.harness import MIXED_ACCOUNTS, Load, Run, Stack, free_ports

WAITING_LINES = 2  # attempts the worker must have logged before the service comes back
LOG_TIMEOUT = 60.0
BOUND = 2  # seconds of BILLING_STARTUP_TIMEOUT for the give-up tests
EXIT_TIMEOUT = 60.0


async def test_worker_started_while_postgres_is_down(stack: Stack, seed: int, report_summary) -> None:
    await stack.start(workers=1)
    assert stack.workers is not None and stack.postgres is not None
    postgres = stack.postgres
    async with Run("worker-start-postgres-down", seed, stack, report_summary) as run:
        accounts = await run.open_accounts("spg", 6, options=MIXED_ACCOUNTS)
        outage = _start_worker_during(run, "worker-start-postgres-down", lambda: postgres.stop("fast"),
                                      postgres.start, "waiting for Postgres")
        await Load(stack, run.ledger, accounts, seed).run_during(outage, tail=2.0)
        await run.check()
        _assert_served_by_the_waiting_worker(stack, "waiting for Postgres")


async def test_worker_started_while_temporal_is_down(stack: Stack, seed: int, report_summary) -> None:
    await stack.start(workers=1, sdk_retries=False, call_timeout=3.0)
    assert stack.workers is not None
    temporal = stack.temporal
    async with Run("worker-start-temporal-down", seed, stack, report_summary) as run:
        accounts = await run.open_accounts("stp", 6, options=MIXED_ACCOUNTS)
        outage = _start_worker_during(run, "worker-start-temporal-down", temporal.stop, temporal.start,
                                      "waiting for Temporal")
        await Load(stack, run.ledger, accounts, seed).run_during(outage, tail=2.0)
        await run.check()
        assert run.ledger.errors, "the outage went unnoticed by every client"
        _assert_served_by_the_waiting_worker(stack, "waiting for Temporal")


async def test_worker_loses_postgres_during_its_migrations(stack: Stack, seed: int,
                                                          report_summary) -> None:
    """The worker's migration waits for the lock that another migrator holds; Postgres stops
    under it (the migration's transaction is cut off) and comes back; the worker migrates from
    the start and serves. Accounts are opened meanwhile."""
    await stack.start(workers=0)
    assert stack.workers is not None and stack.postgres is not None
    postgres = stack.postgres
    async with Run("worker-loses-postgres-migrating", seed, stack, report_summary) as run:
        with psycopg.connect(postgres.url, autocommit=True) as other_migrator:
            other_migrator.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            stack.workers.add()
            await _until(lambda: _waiting_for_the_migration_lock(postgres.url), "the worker migrates")
            opening = asyncio.ensure_future(run.open_accounts("mig", 4, options=MIXED_ACCOUNTS))
            await asyncio.to_thread(postgres.stop, "fast")  # also ends the other migrator's session
        run.faults.counts["postgres-stop-during-migration"] += 1
        await _until_logged(stack.workers.slots[0], "waiting for Postgres", WAITING_LINES)
        await asyncio.to_thread(postgres.start)
        accounts = await opening
        await Load(stack, run.ledger, accounts, seed).run(3.0)
        await run.check()
        worker = stack.workers.slots[0]
        assert any("migrations applied: 0001" in line for line in worker.recent), list(worker.recent)
        _assert_served_by_the_waiting_worker(stack, "waiting for Postgres")


def test_worker_gives_up_on_postgres_after_the_bound() -> None:
    result = _run_worker({"DATABASE_URL": f"postgresql://billing_worker@127.0.0.1:{_free_port()}/billing",
                          "BILLING_STARTUP_TIMEOUT": str(BOUND)})
    assert result.returncode == 1, result.stdout
    assert f"still unavailable after {BOUND} s" in result.stdout, result.stdout
    assert "gave up waiting: Postgres at 127.0.0.1:" in result.stdout, result.stdout
    assert result.stdout.count("waiting for Postgres at ") >= WAITING_LINES, result.stdout
    assert "Connection refused (attempt 1, next in 0.5 s)" in result.stdout, result.stdout


def test_worker_gives_up_on_temporal_after_the_bound(worker_db_url: str) -> None:
    result = _run_worker({"DATABASE_URL": worker_db_url, "BILLING_STARTUP_TIMEOUT": str(BOUND),
                          "TEMPORAL_ADDRESS": f"127.0.0.1:{_free_port()}"})
    assert result.returncode == 1, result.stdout
    assert "gave up waiting: Temporal at 127.0.0.1:" in result.stdout, result.stdout
    assert f"still unavailable after {BOUND} s" in result.stdout, result.stdout
    assert result.stdout.count("waiting for Temporal at ") >= WAITING_LINES, result.stdout


def test_worker_refuses_to_serve_as_the_owner(owner_db_url: str) -> None:
    result = _run_worker({"DATABASE_URL": owner_db_url, "TEMPORAL_ADDRESS": f"127.0.0.1:{_free_port()}"})
    assert result.returncode == 2, result.stdout
    assert "worker cannot start: the worker's database role billing_owner owns the event log" in (
        result.stdout), result.stdout


def test_worker_stops_while_waiting_when_told_to() -> None:
    env = _worker_env({"DATABASE_URL": f"postgresql://billing_worker@127.0.0.1:{_free_port()}/billing"})
    process = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=env, text=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + LOG_TIMEOUT
        while not any("waiting for Postgres" in line for line in lines) and time.monotonic() < deadline:
            lines.append(process.stdout.readline())
        process.send_signal(signal.SIGTERM)
        output = "".join(lines) + process.communicate(timeout=EXIT_TIMEOUT)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "stopped before serving" in output, output


# --- helpers ----------------------------------------------------------------------------------


async def _start_worker_during(run: Run, kind: str, stop: Callable[[], None], start: Callable[[], None],
                               waiting: str) -> None:
    """Take the worker and a service away, start a new worker, let it log ``WAITING_LINES``
    attempts, then bring the service back."""
    workers = run.stack.workers
    assert workers is not None
    await asyncio.to_thread(workers.kill, 0)
    await asyncio.to_thread(stop)
    workers.restart(0)
    await _until_logged(workers.slots[0], waiting, WAITING_LINES)
    await asyncio.to_thread(start)
    run.faults.counts[kind] += 1


def _assert_served_by_the_waiting_worker(stack: Stack, waiting: str) -> None:
    """The worker that waited is the one that served: it never exited, and it said so."""
    assert stack.workers is not None
    assert stack.workers.crashes() == []
    worker = stack.workers.slots[0]
    assert worker.process.poll() is None and worker.ready.is_set()
    lines = list(worker.recent)
    assert sum(waiting in line for line in lines) >= WAITING_LINES, lines
    assert any(" is back after " in line for line in lines), lines


async def _until_logged(worker: WorkerProcess, text: str, count: int) -> None:
    def logged() -> bool:
        if worker.process.poll() is not None:
            raise AssertionError(f"worker exited with {worker.process.returncode}: {list(worker.recent)}")
        return sum(text in line for line in worker.recent) >= count

    await _until(logged, f"{count} x {text!r} in the worker's log")


async def _until(condition: Callable[[], bool], what: str, timeout: float = LOG_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:g} s")
        await asyncio.sleep(0.1)


def _waiting_for_the_migration_lock(admin_url: str) -> bool:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        return conn.execute("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND wait_event = 'advisory' AND usename = 'billing_owner'"
                            ).fetchone() is not None


def _worker_env(settings: dict[str, str]) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("BILLING_", "TEMPORAL_")) and name != "DATABASE_URL"}
    return {**env, "PYTHONUNBUFFERED": "1", **settings}


def _run_worker(settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "worker.py"], cwd=ROOT, env=_worker_env(settings), text=True,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=EXIT_TIMEOUT)


def _free_port() -> int:
    return free_ports(1)[0]
