"""The benchmark rows of replay, snapshots, the feed and the projections (mode 8 and 9).

- 8. the pure fold: ``evolve`` over events already in memory;
- 8. a full replay (accounts, statement, daily totals) of a log written by SQL, into shadow
  tables and swapped in, in a process of its own so that its peak RSS is its own;
- 8. loading one long account with and without its snapshot;
- 9. the batched load of mode 3 with the projections off and on (the feed's cost), and the
  projections' lag during it.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
import uuid
from functools import reduce
from typing import Any

import psycopg

from activities import snapshots
from activities.db import migrate
from activities.rows import STORED_EVENT, StoredEvent, in_order
from bench import workloads
from client import AccountClient
from domain.account import evolve
from domain.events import AccountCreated, ChargeApplied, ChargeDeclined, Event, FundsAdded
from domain.state import AccountState
from projections.reads import projection_status


def fold_row(run: Any, events: int) -> None:
    rng = random.Random(1)
    log: list[Event] = [AccountCreated(account_id="a", currency="USD")]
    for i in range(events - 1):
        pick = rng.random()
        log.append(FundsAdded(command_id=f"c{i}", amount=100) if pick < 0.5 else
                   ChargeApplied(command_id=f"c{i}", amount=50) if pick < 0.9 else
                   ChargeDeclined(command_id=f"c{i}", amount=10**9, reason="no", balance=0))
    started = time.perf_counter()
    state = reduce(evolve, log, AccountState("a"))
    seconds = time.perf_counter() - started
    assert state.version == events
    run.add("8. pure fold (evolve, events in memory)", f"{events:,} events, 1 account, "
            f"memory of {len(state.recent_commands):,} ids", f"{events / seconds:,.0f} events/s")


async def replay_rows(run: Any, accounts_count: int, per_account: int) -> None:
    url = run.stack.new_database(f"replay_{uuid.uuid4().hex[:6]}")
    await migrate(url)
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_FILL, (accounts_count, per_account))
    filled = time.perf_counter() - started
    events = accounts_count * per_account
    child = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "bench.replay", url],
                                    capture_output=True, text=True, check=True)
    done = json.loads(child.stdout)
    run.add("8. full replay into shadow tables + swap",
            f"{events:,} events, {accounts_count:,} accounts (written by SQL in {filled:.0f} s)",
            f"{done['events'] / done['seconds']:,.0f} events/s, peak RSS {done['peak_rss_mib']:.0f} MiB")


_FILL = """
INSERT INTO account_events (event_id, account_id, version, event_type, payload, command_id,
                            schema_version)
SELECT gen_random_uuid(), 'r' || a, v,
       CASE WHEN v = 1 THEN 'ACCOUNT_CREATED' WHEN v %% 3 = 0 THEN 'CHARGE_APPLIED' ELSE 'FUND_ADDED' END,
       CASE WHEN v = 1 THEN jsonb_build_object('account_id', 'r' || a, 'currency', 'USD',
                                              'overdraft_limit', 0, 'billing_period', 'monthly',
                                              'opened_at', now())
            ELSE jsonb_build_object('amount', 100 + v %% 7, 'description', 'bench') END,
       CASE WHEN v = 1 THEN NULL ELSE 'c' || v END,
       CASE WHEN v = 1 THEN 2 ELSE 1 END
  FROM generate_series(1, %s) AS a, generate_series(1, %s) AS v
"""


async def load_rows(run: Any, account_id: str) -> None:
    """Load the long account (mode 7's) from its snapshot and the events after it, and from its
    whole log."""
    async with await psycopg.AsyncConnection.connect(run.stack.database_url, autocommit=True) as conn:
        started = time.perf_counter()
        loaded = await snapshots.load(conn, account_id)
        with_snapshot = time.perf_counter() - started
        started = time.perf_counter()
        cursor = await conn.execute(f"SELECT {STORED_EVENT} FROM account_events WHERE account_id = %s"
                                    " ORDER BY version", (account_id,))
        rows = [StoredEvent(*row) for row in await cursor.fetchall()]
        state = reduce(evolve, in_order(account_id, rows), AccountState(account_id))
        without = time.perf_counter() - started
    assert state == loaded.state or state.version == loaded.state.version
    run.add("8. load one account, from its snapshot", f"{state.version:,} events; snapshot at "
            f"{loaded.snapshot_version:,}, {loaded.events_read} events after it",
            f"{with_snapshot * 1000:.1f} ms")
    run.add("8. load one account, whole log", f"{state.version:,} events",
            f"{without * 1000:.0f} ms ({state.version / without:,.0f} events/s)")


async def feed_cost_rows(run: Any, accounts: AccountClient, commands: int) -> None:
    """Mode 3 with the projections off, then on while their lag is sampled."""
    await run.stack.restart_worker(BILLING_PROJECTIONS="0")
    off = await _batched(run, accounts, commands)
    await run.stack.restart_worker(BILLING_PROJECTIONS="1")
    lags: list[tuple[int, float]] = []
    sampling = asyncio.ensure_future(_sample_lag(run.stack.database_url, lags))
    while not lags or lags[-1][0] > 0:  # the backlog of the run without them, first
        await asyncio.sleep(0.1)
    lags.clear()
    on = await _batched(run, accounts, commands)
    load_ended = time.perf_counter()
    while not lags or lags[-1][0] > 0:
        await asyncio.sleep(0.1)
    caught_up = time.perf_counter() - load_ended
    sampling.cancel()
    run.add("9. batching client, projections off (worker runs no feed reader)",
            f"{commands:,} commands", f"{off:,.0f} ops/s", workloads_ratio(off, run.baseline_rate))
    run.add("9. batching client, projections on", f"{commands:,} commands", f"{on:,.0f} ops/s",
            f"{on / off:.2f}x of off")
    run.add("9. projection lag under that load", "statement + daily totals, sampled every 0.25 s",
            f"max {max(e for e, _ in lags):,} events / {max(s for _, s in lags):.1f} s; "
            f"caught up {caught_up:.1f} s after the load")


def workloads_ratio(rate: float, baseline: float) -> str:
    return f"{rate / baseline:.2f}x" if baseline else ""


async def _batched(run: Any, accounts: AccountClient, commands: int) -> float:
    ids = await workloads.open_accounts(accounts, f"feed-{uuid.uuid4().hex[:6]}",
                                        run.sizes.batched_accounts)
    result = await workloads.batched(accounts, ids, commands, run.sizes.callers)
    return result.rate


async def _sample_lag(url: str, lags: list[tuple[int, float]]) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while True:
            statuses = await projection_status(conn)
            lags.append((max((s.lag_events for s in statuses), default=0),
                         max((s.lag_seconds for s in statuses), default=0.0)))
            await asyncio.sleep(0.25)


async def _replay_in_this_process(url: str) -> dict[str, Any]:
    from bench.stack import peak_rss_mib
    from operations.replay.rebuild import rebuild
    from projections import REPLAYED

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        done = await rebuild(conn, REPLAYED)
        seconds = time.perf_counter() - started
    import os
    return {"events": done.events_done, "seconds": seconds, "peak_rss_mib": peak_rss_mib(os.getpid())}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_replay_in_this_process(sys.argv[1]))))
