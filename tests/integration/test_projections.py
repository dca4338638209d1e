"""The projection runner applies every event exactly once: a handler's writes and its checkpoint
commit together. Two runners at once share the work without applying anything twice; a runner
cancelled or cut off from Postgres mid-step loses nothing and duplicates nothing; a handler that
fails on one event stops its projection there (status shows the event and the error) while the
other goes on, until ``projections rebuild NAME`` clears it; status shows the lag.

"Exactly once" is checked three ways: the checkpoints' ``events_applied`` against the log,
``reconcile`` (which recomputes the statement and the daily totals from the log; a batch
applied twice doubles a day's totals), and what the handlers themselves were given.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from activities.db import open_pool
from activities.event_store import EventStore
from domain.events import ChargeApplied, Event, FundsAdded
from domain.state import AccountState
from operations.reconcile import reconcile
from projections import PROJECTIONS, daily_totals, statement
from projections.base import Projection, Tables
from projections.checkpoints import all_checkpoints, ensure
from projections.daily_totals import DailyTotals
from projections.feed import FeedEvent
from projections.invoices import Invoices
from projections.reads import ProjectionStatus, projection_status
from projections.runner import ProjectionRunner
from projections.statement import Statement
from starter import cli
from tests.integration.helpers import append_request, count_events, created, fold

SETTLE = 30.0


class Wrapped:
    """A real projection, with a hook around its ``apply`` (same name, tables and checkpoint)."""

    def __init__(self, inner: Projection) -> None:
        self.inner, self.name, self.tables = inner, inner.name, inner.tables
        self.applied = 0  # events this wrapper's apply got through (committed or not)

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[FeedEvent],
                    tables: Tables) -> None:
        await self.before(conn, events)
        await self.inner.apply(conn, events, tables)
        self.applied += len(events)
        await self.after(conn, events)

    async def before(self, conn: psycopg.AsyncConnection, events: Sequence[FeedEvent]) -> None:
        pass

    async def after(self, conn: psycopg.AsyncConnection, events: Sequence[FeedEvent]) -> None:
        pass


class Stalls(Wrapped):
    """Writes its first batch, then waits (in the step's open transaction) to be killed."""

    def __init__(self, inner: Projection) -> None:
        super().__init__(inner)
        self.stalled = asyncio.Event()
        self.go_on = asyncio.Event()
        self.backend_pid = 0

    async def after(self, conn: psycopg.AsyncConnection, events: Sequence[FeedEvent]) -> None:
        if not self.stalled.is_set():
            self.backend_pid = conn.info.backend_pid
            self.stalled.set()
            await self.go_on.wait()


class Poisoned(Wrapped):
    """A handler with a bug: it fails on the event of command id ``poison``."""

    async def before(self, conn: psycopg.AsyncConnection, events: Sequence[FeedEvent]) -> None:
        if any(e.stored.command_id == "poison" for e in events):
            raise RuntimeError("cannot handle the poison")


class Traffic:
    """Real appends (``EventStore``) to a few accounts: funds, and charges within the balance."""

    def __init__(self, pool: Any, accounts: int = 4) -> None:
        self.store = EventStore(pool, snapshot_every=0)
        self.states = {f"p-{index}": AccountState(f"p-{index}") for index in range(accounts)}
        self.sent = 0

    async def append(self, account_id: str, events: list[Event]) -> None:
        state = self.states[account_id]
        if not state.exists:
            events = [created(account_id, "USD" if account_id[-1] in "02468" else "EUR"), *events]
        assert (await self.store.append_events(append_request(state, events))).appended
        self.states[account_id] = fold(state, events)

    async def some(self, rounds: int, pause: float = 0.0) -> None:
        """``rounds`` batches of one to three events for each account, accounts concurrently."""
        async def account(account_id: str) -> None:
            for _ in range(rounds):
                self.sent += 1
                number = self.sent
                batch: list[Event] = [FundsAdded(command_id=f"f{number}", amount=number)]
                if number % 3 == 0:
                    batch.append(ChargeApplied(command_id=f"c{number}", amount=number // 2))
                await self.append(account_id, batch)
                await asyncio.sleep(pause)
        await asyncio.gather(*(account(account_id) for account_id in self.states))


async def caught_up(runner: ProjectionRunner) -> None:
    while (await runner.catch_up())[0]:
        pass


async def statuses(pool: Any) -> dict[str, ProjectionStatus]:
    async with pool.connection() as conn:
        return {status.name: status for status in await projection_status(conn)}


async def assert_exactly_once(pool: Any) -> None:
    """Every projection at the end of the log, each event applied once, and the statement and
    daily totals equal to what the log says."""
    events = await count_events(pool)
    found = await statuses(pool)
    assert {name: (s.lag_events, s.events_applied, s.failure) for name, s in found.items()} == {
        projection.name: (0, events, None) for projection in PROJECTIONS}
    report = await reconcile(pool)
    assert report.ok, report.summary()


async def run_until(runner: ProjectionRunner, pool: Any, done: asyncio.Future[Any]) -> None:
    """``runner.run`` (the worker's loop, with its LISTEN connection) until ``done`` is over
    and the projections have caught up with the log."""
    stop = asyncio.Event()
    url = pool.kwargs.get("conninfo") or pool.conninfo

    async def connect() -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(url, autocommit=True)

    task = asyncio.ensure_future(runner.run(stop, connect))
    try:
        await done
        async with asyncio.timeout(SETTLE):
            while True:
                found = await statuses(pool)
                failed = {name: s.failure for name, s in found.items() if s.failure}
                assert not failed, failed  # stopped for good: no use waiting
                if not any(s.lag_events for s in found.values()):
                    break
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, SETTLE)


# --- exactly once ------------------------------------------------------------------------------

async def test_two_runners_at_once_apply_every_event_once(worker_pool, worker_db_url, pool):
    traffic = Traffic(worker_pool)
    first = [Wrapped(Statement()), Wrapped(DailyTotals()), Wrapped(Invoices())]
    second = [Wrapped(Statement()), Wrapped(DailyTotals()), Wrapped(Invoices())]
    other_pool = open_pool(worker_db_url)  # another worker's
    await other_pool.open(wait=True)
    try:
        writing = asyncio.ensure_future(traffic.some(rounds=40, pause=0.005))
        await asyncio.gather(run_until(ProjectionRunner(worker_pool, first), worker_pool, writing),
                             run_until(ProjectionRunner(other_pool, second), other_pool, writing))
    finally:
        await other_pool.close()

    await assert_exactly_once(pool)
    events = await count_events(pool)
    for index in range(len(first)):  # what the handlers were given, committed: no step failed here
        assert first[index].applied + second[index].applied == events
    assert all(wrapper.applied for wrapper in first + second), "both runners should have worked"


@pytest.mark.parametrize("kill", ["cancel the step", "terminate its connection"])
async def test_a_runner_killed_mid_step_loses_nothing_and_duplicates_nothing(
        worker_pool, pool, kill):
    traffic = Traffic(worker_pool)
    await traffic.some(rounds=5)
    totals = Stalls(DailyTotals())  # daily totals: a batch applied twice would double a day
    runner = ProjectionRunner(worker_pool, [Statement(), totals, Invoices()])
    await caught_up(ProjectionRunner(worker_pool, [Statement(), Invoices()]))  # not at issue
    async with worker_pool.connection() as conn:
        await ensure(conn, [daily_totals.NAME])
    await traffic.some(rounds=3)
    before = await _totals_and_checkpoint(pool)

    if kill == "cancel the step":
        step = asyncio.ensure_future(runner.step(totals))
        await asyncio.wait_for(totals.stalled.wait(), SETTLE)
        step.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await step
        assert await _totals_and_checkpoint(pool) == before  # the written totals rolled back
        await caught_up(ProjectionRunner(worker_pool, PROJECTIONS))  # another runner takes over
    else:
        async def terminate() -> None:
            await asyncio.wait_for(totals.stalled.wait(), SETTLE)
            async with pool.connection() as conn:
                await conn.execute("SELECT pg_terminate_backend(%s)", (totals.backend_pid,))
            assert await _totals_and_checkpoint(pool) == before
            totals.go_on.set()  # its next statement finds the connection gone; it retries

        await run_until(runner, worker_pool, asyncio.ensure_future(terminate()))

    assert totals.stalled.is_set() and totals.applied > 0
    await assert_exactly_once(pool)


async def _totals_and_checkpoint(pool: Any) -> Any:
    async with pool.connection() as conn:
        cursor = await conn.execute(f"SELECT * FROM {daily_totals.TABLE} ORDER BY 1, 2")
        totals = await cursor.fetchall()
    checkpoint = {c.name: c for c in await _checkpoints(pool)}[daily_totals.NAME]
    return totals, checkpoint.at, checkpoint.events_applied


async def _checkpoints(pool: Any) -> list[Any]:
    async with pool.connection() as conn:
        return await all_checkpoints(conn)


# --- a handler that fails ------------------------------------------------------------------------

async def test_a_failing_handler_stops_its_projection_at_the_event_until_it_is_rebuilt(
        worker_pool, pool, worker_db_url, owner_db_url, temporal_env, monkeypatch, capsys):
    traffic = Traffic(worker_pool, accounts=2)
    await traffic.some(rounds=3)
    await traffic.append("p-1", [FundsAdded(command_id="poison", amount=7)])
    await traffic.some(rounds=2)
    poisoned = Poisoned(DailyTotals())
    runner = ProjectionRunner(worker_pool, [Statement(), poisoned])
    await caught_up(runner)

    status = await statuses(pool)
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT version, position FROM account_events"
                                    " WHERE command_id = 'poison'")
        [(poison_version, poison_position)] = await cursor.fetchall()
        cursor = await conn.execute("SELECT count(*) FROM account_events WHERE position < %s",
                                    (poison_position,))
        [(before_poison,)] = await cursor.fetchall()
    events = await count_events(pool)
    stopped = status[daily_totals.NAME]
    assert stopped.failure == (f"account p-1 version {poison_version}: RuntimeError: cannot handle "
                               "the poison")
    assert stopped.failed_position == poison_position
    assert (stopped.events_applied, stopped.lag_events) == (before_poison, events - before_poison)
    assert stopped.lag_seconds > 0
    assert (status[statement.NAME].lag_events, status[statement.NAME].failure) == (0, None)

    # The statement goes on; the stopped projection does not move, not even past other events.
    await traffic.some(rounds=2)
    await caught_up(runner)
    status = await statuses(pool)
    assert status[statement.NAME].lag_events == 0
    assert status[daily_totals.NAME].events_applied == before_poison
    assert status[daily_totals.NAME].lag_events == await count_events(pool) - before_poison

    # Fixed (the real handler again) and rebuilt from the log: the failure is cleared.
    monkeypatch.setenv("DATABASE_URL", worker_db_url)
    monkeypatch.setenv("BILLING_MIGRATION_URL", owner_db_url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", temporal_env.client.service_client.config.target_host)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", temporal_env.client.namespace)
    code = await asyncio.to_thread(cli.run, ["projections", "rebuild", "daily_totals", "--json"])
    rebuilt = capsys.readouterr()
    assert code == 0, rebuilt
    assert json.loads(rebuilt.out)["projections"] == ["daily_totals"]
    await caught_up(ProjectionRunner(worker_pool, PROJECTIONS))
    await assert_exactly_once(pool)


# --- lag -----------------------------------------------------------------------------------------

async def test_status_shows_how_far_behind_each_projection_is(worker_pool, pool, worker_db_url,
                                                               monkeypatch, capsys):
    runner = ProjectionRunner(worker_pool, PROJECTIONS)
    await runner.catch_up()  # the checkpoint rows exist from the runner's first step on
    traffic = Traffic(worker_pool, accounts=2)
    await traffic.some(rounds=3)
    await asyncio.sleep(0.05)  # the oldest waiting event is measurably old
    events = await count_events(pool)

    monkeypatch.setenv("DATABASE_URL", worker_db_url)
    code = await asyncio.to_thread(cli.run, ["projections", "status", "--json"])
    shown = capsys.readouterr()
    assert code == 0, shown
    behind = {p["name"]: p for p in json.loads(shown.out)["projections"]}
    assert set(behind) == {projection.name for projection in PROJECTIONS}
    assert all(p["lag_events"] == events and p["lag_seconds"] >= 0.05 and p["events_applied"] == 0
               for p in behind.values()), behind

    await caught_up(runner)
    assert {(s.lag_events, s.lag_seconds) for s in (await statuses(pool)).values()} == {(0, 0.0)}
