"""``python -m starter replay`` as a real process: the replay is a Temporal workflow hosted by the
process, so when the process is SIGKILLed mid-scan, running the command again resumes it (once
the dead attempt's heartbeat times out) instead of starting from zero, and the result equals a
replay that was never interrupted. Then the issue's "done when": ``replay --verify`` exits 0 on
a clean system, 1 naming the account of a tampered ``accounts`` row, and a full replay repairs it.

The log is filled straight with SQL (``generate_series``): many accounts of valid events,
ACCOUNT_CREATED in schema version 2 and, for every other account, the old version 1.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from operations.replay.hosted import workflow_id
from projections import REPLAYED
from tests.e2e.conftest import ROOT, Cli
from tests.integration.test_replay import everything

ACCOUNTS, EVENTS_PER_ACCOUNT = 1_200, 50  # 60,000 events: a replay of several seconds
CHUNK = 10_000  # the replay commits its progress every CHUNK events (ReplayInput's default)
KILL_TIMEOUT = 120.0  # until the first run has committed a chunk
RUN_TIMEOUT = 240.0  # a whole run, the wait for the dead attempt's heartbeat timeout included
MARKER = "zz-left-in-the-shadow"

FILL = """
INSERT INTO account_events (event_id, account_id, version, event_type, payload, command_id,
                            schema_version)
SELECT gen_random_uuid(), id, v,
       CASE WHEN v = 1 THEN 'ACCOUNT_CREATED' WHEN v %% 2 = 0 THEN 'FUND_ADDED' ELSE 'CHARGE_APPLIED' END,
       CASE WHEN v = 1 AND a %% 2 = 0 THEN jsonb_build_object(
                'account_id', id, 'currency', 'USD', 'overdraft_limit', 0,
                'billing_period', 'monthly', 'opened_at', '2026-11-01T00:00:00+00:00')
            WHEN v = 1 THEN jsonb_build_object('account_id', id, 'currency', 'EUR', 'overdraft_limit', 10)
            WHEN v %% 2 = 0 THEN jsonb_build_object('amount', 100 + a %% 7, 'description', 'top-up')
            ELSE jsonb_build_object('amount', 60, 'description', '') END,
       CASE WHEN v = 1 THEN NULL ELSE 'c' || v END,
       CASE WHEN v = 1 AND a %% 2 = 1 THEN 1 ELSE 2 - (v > 1)::int END
  FROM generate_series(1, %(accounts)s) AS a, LATERAL (SELECT 'bulk-' || lpad(a::text, 6, '0') AS id) i,
       generate_series(1, %(events)s) AS v
"""


@pytest.fixture
def replay_env(service_env: dict[str, str], owner_db_url: str) -> dict[str, str]:
    return {**service_env, "BILLING_MIGRATION_URL": owner_db_url}


@pytest.fixture
def replay_cli(replay_env: dict[str, str]) -> Cli:
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "starter", *args], cwd=ROOT, env=replay_env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT)
    return run


@pytest.fixture
async def no_replay_left_behind(client: Client) -> AsyncIterator[None]:
    """The replay's workflow id and task queue are the same for every database on a Temporal
    namespace: one left running by a failed test would be attached to by the next."""
    yield
    handle = client.get_workflow_handle(workflow_id([p.name for p in REPLAYED]))
    try:
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("left behind by a test")
    except Exception:  # noqa: BLE001 - never started: nothing to clean
        pass


@pytest.mark.slow  # 60-80 s on the shared 2-core machine: run with -m slow
async def test_a_killed_replay_resumes_and_verify_finds_and_replay_repairs_a_tampered_row(
        owner_db_url: str, replay_env: dict[str, str], replay_cli: Cli, tmp_path: Path,
        no_replay_left_behind: None) -> None:
    async with await psycopg.AsyncConnection.connect(owner_db_url, autocommit=True) as conn:
        await conn.execute(FILL, {"accounts": ACCOUNTS, "events": EVENTS_PER_ACCOUNT})
        total = ACCOUNTS * EVENTS_PER_ACCOUNT

        first = _start_replay(replay_env, tmp_path / "first.log")
        interrupted = await _kill_while_scanning(conn, first)
        progress = await _progress(conn)
        assert progress is not None and progress[0] == interrupted and progress[1] is None, progress
        assert CHUNK <= interrupted < total
        assert await _count(conn, "accounts") == 0  # nothing swapped in
        # Left in the shadow by the first run: a fresh start would drop it with the shadow.
        await conn.execute("INSERT INTO accounts__replay (account_id, currency, version)"
                           " VALUES (%s, 'USD', 1)", (MARKER,))

        started = time.monotonic()
        second = replay_cli("replay", "--json")
        resumed_seconds = time.monotonic() - started
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["events"] == total
        assert await _progress(conn) is None
        resumed = await everything(conn)
        assert [row[0] for row in resumed["accounts"]].count(MARKER) == 1  # resumed, not restarted
        await conn.execute("DELETE FROM accounts WHERE account_id = %s", (MARKER,))
        resumed = await everything(conn)

        clean = replay_cli("replay", "--verify")
        assert clean.returncode == 0, clean.stdout + clean.stderr
        await conn.execute("UPDATE accounts SET balance = balance + 1 WHERE account_id = 'bulk-000007'")
        tampered = replay_cli("replay", "--verify", "--json")
        assert tampered.returncode == 1, tampered.stdout + tampered.stderr
        findings = json.loads(tampered.stdout)["findings"]
        assert [(f["account_id"], f["field"]) for f in findings] == [("bulk-000007", "accounts.balance")]

        started = time.monotonic()
        repaired = replay_cli("replay")  # a replay that is never interrupted
        uninterrupted_seconds = time.monotonic() - started
        assert repaired.returncode == 0, repaired.stderr
        assert "swapped in" in repaired.stdout
        assert await everything(conn) == resumed
        assert replay_cli("replay", "--verify").returncode == 0
    print(f"\nreplay of {total:,} events: killed at {interrupted:,}, the second run took "
          f"{resumed_seconds:.1f} s (the dead attempt's heartbeat timeout included), an "
          f"uninterrupted one {uninterrupted_seconds:.1f} s")


def _start_replay(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as sink:
        return subprocess.Popen([sys.executable, "-m", "starter", "replay", "--json"], cwd=ROOT,
                                env=env, stdin=subprocess.DEVNULL, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)


async def _kill_while_scanning(conn: psycopg.AsyncConnection, process: subprocess.Popen) -> int:
    """SIGKILL the replay's process (its whole session) once it has committed a chunk of the
    scan; return how many events the committed progress covers."""
    deadline = time.monotonic() + KILL_TIMEOUT
    try:
        while True:
            progress = await _progress(conn)
            if progress is not None and progress[0] > 0:
                assert progress[1] is None, f"past the scan already: {progress}"
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)
                break
            assert process.poll() is None, f"the replay ended by itself: {process.returncode}"
            assert time.monotonic() < deadline, "the replay committed nothing"
            await asyncio.sleep(0.02)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
    progress = await _progress(conn)  # the chunk in flight at the kill may have committed too
    assert progress is not None
    return progress[0]


async def _progress(conn: psycopg.AsyncConnection) -> tuple[int, int | None] | None:
    """The replay's committed (events done, feed position: None while scanning)."""
    cursor = await conn.execute("SELECT events_done, feed_position FROM replay_progress")
    return await cursor.fetchone()


async def _count(conn: psycopg.AsyncConnection, table: str) -> int:
    cursor = await conn.execute(f"SELECT count(*) FROM {table}")
    row = await cursor.fetchone()
    return row[0] if row else 0
