"""Postgres stopped and started under load, on the same data dir: a clean restart, a crash
(immediate shutdown, recovery from the WAL), two seconds with no database at all, and
connections dropped right after their commits (so the worker sees an error for a transaction
that did commit). Activities retry; the worker process must stay up throughout, and nothing
acknowledged may be lost or applied twice."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from tests.faults.harness import MIXED_ACCOUNTS, Load, Run, Stack, load_rounds, soak_minutes

CI_FAULTS = ("restart", "crash", "down-2s", "drop-after-commit")


async def test_postgres_restarted_during_load(stack: Stack, seed: int, report_summary) -> None:
    await _postgres_faults(stack, seed, 0, report_summary, "postgres-restart")


@pytest.mark.slow
async def test_postgres_restarts_soak(stack: Stack, seed: int, report_summary) -> None:
    await _postgres_faults(stack, seed, soak_minutes(), report_summary, "postgres-restart-soak")


async def _postgres_faults(stack: Stack, seed: int, minutes: float, report_summary,
                           scenario: str) -> None:
    await stack.start(workers=1)
    assert stack.workers is not None
    worker = stack.workers.pid(0)
    rng = random.Random(seed)
    async with Run(scenario, seed, stack, report_summary) as run:
        accounts = await run.open_accounts("pg", 6, options=MIXED_ACCOUNTS)
        for round_index, seconds in enumerate(load_rounds(0, minutes)):
            load = Load(stack, run.ledger, accounts, seed, prefix=f"r{round_index}")
            await load.run_during(_disturb_postgres(run, rng, seconds))
            await run.check()
            assert stack.workers.crashes() == [] and stack.workers.pid(0) == worker
    assert run.faults.counts["postgres-drop-after-commit"] >= 1, run.faults.counts
    assert len(run.faults.counts) == len(CI_FAULTS), run.faults.counts


async def _disturb_postgres(run: Run, rng: random.Random, seconds: float) -> None:
    """Each kind of fault once, in random order (CI), or random ones for ``seconds`` (soak)."""
    kinds = rng.sample(CI_FAULTS, len(CI_FAULTS))
    stop_at = time.monotonic() + seconds
    retries = 5
    while kinds or time.monotonic() < stop_at:
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        kind = kinds.pop() if kinds else rng.choice(CI_FAULTS)
        if kind == "restart":
            await run.faults.restart_postgres("fast")
        elif kind == "crash":
            await run.faults.restart_postgres("immediate")
        elif kind == "down-2s":
            await run.faults.restart_postgres("fast", down_for=2.0)
        elif not await run.faults.drop_connections_after_commit() and retries:
            retries -= 1
            kinds.append(kind)  # nothing was committing just then: try again later
