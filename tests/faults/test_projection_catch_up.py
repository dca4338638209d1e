"""The projections catch up after the worker that runs them is SIGKILLed.

Worker 0 runs the workflows and the projection runner (as ``python worker.py`` does by
default); worker 1 runs the workflows only (``BILLING_PROJECTIONS=0``), so appends go on while
worker 0 is dead. Under load, worker 0 is killed; events accumulate and ``projections status``
(the same read as the CLI's) shows the lag growing in events and seconds; worker 0 is started
again, the lag falls to 0, and ``reconcile`` (which recomputes the statement and the daily
totals from the log) finds nothing: no event lost or applied twice by the interrupted runner.
"""

from __future__ import annotations

import asyncio
import time

import psycopg

from projections import PROJECTIONS as ALL_PROJECTIONS
from projections.reads import ProjectionStatus, projection_status
from tests.faults.harness import LOCAL, REGULAR, Load, Run, Stack, settle

LOAD_BEFORE_KILL = 3.0  # seconds of traffic the projections follow live
LAG_TIMEOUT = 60.0  # for the lag to show, and later to fall to 0
DOWN_FOR = 3.0  # seconds worker 0 stays dead once the lag shows

PROJECTIONS = {projection.name for projection in ALL_PROJECTIONS}  # every one the worker runs


async def test_projections_catch_up_after_their_worker_is_killed(stack: Stack, seed: int,
                                                                  report_summary) -> None:
    await stack.start(workers=1)
    assert stack.workers is not None and stack.postgres is not None
    stack.workers.add(BILLING_PROJECTIONS="0")
    await stack.workers.wait_ready()
    async with Run("projections-worker-kill", seed, stack, report_summary) as run:
        accounts = await run.open_accounts("proj", 4, options=(LOCAL, REGULAR))
        load = Load(stack, run.ledger, accounts, seed, prefix="p")
        restarted: list[float] = []  # when worker 0 was started again (monotonic)
        await load.run_during(_kill_and_restart(run, restarted), tail=1.0)

        await settle(stack, accounts)
        caught_up = await _wait_for(stack, lambda found: all(s.lag_events == 0 for s in found))
        run.extra["caught_up_seconds_after_restart"] = round(time.monotonic() - restarted[0], 1)
        await run.check(declines_expected=False)  # settle, then reconcile and the ledger

        events = await _count_events(stack)
        run.extra["events"] = events
        assert {(s.name, s.events_applied, s.failure) for s in caught_up} == {
            (name, events, None) for name in PROJECTIONS}
        assert run.verdict is not None and run.verdict.report.ok


async def _kill_and_restart(run: Run, restarted: list[float]) -> None:
    stack = run.stack
    assert stack.workers is not None
    await asyncio.sleep(LOAD_BEFORE_KILL)
    await run.faults.kill_worker(0, restart=False)
    killed_at = time.monotonic()
    behind = await _wait_for(stack, lambda found: all(s.lag_events > 0 for s in found))
    await asyncio.sleep(DOWN_FOR)  # events keep accumulating meanwhile
    later = await _statuses(stack)
    lag_events = min(s.lag_events for s in later)
    lag_seconds = min(s.lag_seconds for s in later)
    assert lag_events >= min(s.lag_events for s in behind), (behind, later)
    assert lag_seconds > 0, later
    run.extra.update(lag_events=lag_events, lag_seconds=round(lag_seconds, 1),
                     down_seconds=round(time.monotonic() - killed_at, 1))
    stack.workers.restart(0)
    restarted.append(time.monotonic())
    await stack.workers.wait_ready()


async def _statuses(stack: Stack) -> list[ProjectionStatus]:
    assert stack.postgres is not None
    async with await psycopg.AsyncConnection.connect(stack.postgres.worker_url, autocommit=True,
                                                     connect_timeout=10) as conn:
        found = await projection_status(conn)
    assert {s.name for s in found} == PROJECTIONS
    assert not any(s.failure for s in found), found
    return found


async def _wait_for(stack: Stack, done) -> list[ProjectionStatus]:
    deadline = time.monotonic() + LAG_TIMEOUT
    while True:
        found = await _statuses(stack)
        if done(found):
            return found
        assert time.monotonic() < deadline, f"not within {LAG_TIMEOUT:g} s: {found}"
        await asyncio.sleep(0.2)


async def _count_events(stack: Stack) -> int:
    assert stack.postgres is not None
    async with await psycopg.AsyncConnection.connect(stack.postgres.url, connect_timeout=10) as conn:
        cursor = await conn.execute("SELECT count(*) FROM account_events")
        row = await cursor.fetchone()
        return row[0] if row else 0
