"""The Temporal dev server (file-backed) restarted under load: SIGTERM, a pause, and a new
server on the same database file and port. While it is gone every client call fails; the load
sends each command again under the same ``command_id`` until it is acknowledged, which is what
idempotency keys are for. The worker must ride it out, and afterwards nothing acknowledged may
be missing from the log or recorded twice."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from tests.faults.harness import MIXED_ACCOUNTS, Load, Run, Stack, load_rounds, soak_minutes

CI_RESTARTS = 2


async def test_temporal_restarted_during_load(stack: Stack, seed: int, report_summary) -> None:
    await _temporal_restarts(stack, seed, 0, report_summary, "temporal-restart")


@pytest.mark.slow
async def test_temporal_restarts_soak(stack: Stack, seed: int, report_summary) -> None:
    await _temporal_restarts(stack, seed, soak_minutes(), report_summary, "temporal-restart-soak")


async def _temporal_restarts(stack: Stack, seed: int, minutes: float, report_summary,
                             scenario: str) -> None:
    await stack.start(workers=1, sdk_retries=False, call_timeout=3.0)
    assert stack.workers is not None
    worker = stack.workers.pid(0)
    rng = random.Random(seed)
    async with Run(scenario, seed, stack, report_summary) as run:
        accounts = await run.open_accounts("tmp", 6, options=MIXED_ACCOUNTS)
        for round_index, seconds in enumerate(load_rounds(0, minutes)):
            load = Load(stack, run.ledger, accounts, seed, prefix=f"r{round_index}")
            await load.run_during(_restart_repeatedly(run, rng, seconds), tail=2.0)
            await run.check()
            assert stack.workers.crashes() == [] and stack.workers.pid(0) == worker
    assert run.faults.counts["temporal-restart"] >= CI_RESTARTS
    assert run.ledger.errors, "the restarts went unnoticed by every client"


async def _restart_repeatedly(run: Run, rng: random.Random, seconds: float) -> None:
    """``CI_RESTARTS`` restarts (CI), or one every 5–20 s for ``seconds`` (soak)."""
    stop_at = time.monotonic() + seconds
    restarts = 0
    while restarts < CI_RESTARTS or time.monotonic() < stop_at:
        await asyncio.sleep(rng.uniform(1.5, 3.0) if restarts < CI_RESTARTS else rng.uniform(5, 20))
        await run.faults.restart_temporal(down_for=rng.uniform(1.0, 4.0))
        restarts += 1
