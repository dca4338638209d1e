"""Workers SIGKILLed under load, at random moments and right after their commits.

"Right after the commit" is made deterministic without touching the worker: Postgres is told to
wait for a synchronous standby that does not exist, so every commit becomes durable but is
neither visible nor acknowledged; the worker is killed while its commits wait, then the wait is
lifted. Those transactions are committed although their activities never reported back, so
Temporal retries them after the 30 s start-to-close timeout, and the retry must find its own
events instead of writing them again.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from tests.faults.harness import (
    LOCAL,
    REGULAR,
    Load,
    Run,
    Stack,
    deliver,
    load_rounds,
    soak_minutes,
)
from workflows.interface import ADD_FUNDS

CI_LOAD_SECONDS = 8.0
KILL_GRACE = 30.0  # how much longer than the load the kills may go on, to get one of each kind
ACCOUNT_OPTIONS = (REGULAR, {**REGULAR, "history_budget": 40})
"""Regular activities, one account with a small history budget, so runs continue as new while
workers die; ``test_local_activity_accounts`` runs the same with local activities."""


async def test_worker_sigkilled_at_random_moments(stack: Stack, seed: int, report_summary) -> None:
    await _worker_kills(stack, seed, 0, report_summary, workers=1, scenario="worker-kill")


async def test_one_of_two_workers_sigkilled_repeatedly(stack: Stack, seed: int, report_summary) -> None:
    await _worker_kills(stack, seed, 0, report_summary, workers=2, scenario="worker-kill-1-of-2")


async def test_local_activity_accounts(stack: Stack, seed: int, report_summary) -> None:
    await _worker_kills(stack, seed, 0, report_summary, workers=1, scenario="worker-kill-local",
                        options=(LOCAL, {**LOCAL, "history_budget": 40}))


@pytest.mark.slow
async def test_worker_kills_soak(stack: Stack, seed: int, report_summary) -> None:
    await _worker_kills(stack, seed, soak_minutes(), report_summary, workers=2,
                        scenario="worker-kill-soak")


async def test_worker_killed_after_a_local_activity_committed(stack: Stack, seed: int,
                                                              report_summary) -> None:
    """A local activity's input is not in the history: after the worker dies, the workflow
    decides its batch again, and if more commands arrived meanwhile the batch differs from the
    one already committed, so the append meets a version conflict and must reload. (Before
    7964d90 the conflict, which a local activity raises unwrapped, failed the run.)"""
    await stack.start(workers=1)
    async with Run("local-activity-commit-then-kill", seed, stack, report_summary) as run:
        (account,) = await run.open_accounts("local", 1, options=[LOCAL])
        ledger = run.ledger
        await deliver(stack, ledger, [ledger.record("first", account, ADD_FUNDS, 500, "update")])
        held = ledger.record("held", account, ADD_FUNDS, 700, "signal")
        assert await run.faults.kill_worker_after_commit(
            0, restart=False, trigger=lambda: deliver(stack, ledger, [held]))
        # Committed by the dead worker, unknown to the workflow's history:
        assert [row[3] for row in await stack.events([account])][-1] == "held"
        await deliver(stack, ledger, [ledger.record("after", account, ADD_FUNDS, 900, "signal")])
        assert stack.workers is not None  # started above
        stack.workers.restart(0)
        await run.check()
        assert run.verdict is not None and run.verdict.acknowledged == 3


async def _worker_kills(stack: Stack, seed: int, minutes: float, report_summary, *, workers: int,
                        scenario: str, options: tuple[dict, ...] = ACCOUNT_OPTIONS) -> None:
    await stack.start(workers=workers)
    assert stack.workers is not None
    survivors = {index: stack.workers.pid(index) for index in range(1, workers)}
    rng = random.Random(seed)
    async with Run(scenario, seed, stack, report_summary) as run:
        run.extra["workers"] = workers
        accounts = await run.open_accounts("kill", 6, options=options)
        for round_index, seconds in enumerate(load_rounds(CI_LOAD_SECONDS, minutes)):
            load = Load(stack, run.ledger, accounts, seed, prefix=f"r{round_index}")
            await asyncio.gather(load.run(seconds), _kill_repeatedly(run, rng, seconds))
            await run.check()
    assert run.faults.counts["worker-kill-after-commit"] >= 1, run.faults.counts
    assert run.faults.counts["worker-kill"] >= 1, run.faults.counts
    # Only worker 0 was killed: the others ran throughout, and nobody crashed by itself.
    assert {index: stack.workers.pid(index) for index in survivors} == survivors
    assert stack.workers.crashes() == []


async def _kill_repeatedly(run: Run, rng: random.Random, seconds: float) -> None:
    """Kill worker 0 every second or two, alternately while its commits are unacknowledged
    and at a random moment, now and then before the new process has even started polling;
    at least once each way, however long that takes (bounded)."""
    assert run.stack.workers is not None
    stop_at = time.monotonic() + seconds
    after_commit = True
    while True:
        if rng.random() > 0.15:  # otherwise the next kill may land during start-up
            await run.stack.workers.wait_ready()
        await asyncio.sleep(rng.uniform(0.3, 2.0))
        counts = run.faults.counts
        done = counts["worker-kill-after-commit"] and counts["worker-kill"]
        if time.monotonic() >= stop_at and (done or time.monotonic() >= stop_at + KILL_GRACE):
            return
        if after_commit:
            # After a kill nothing commits until the killed tasks time out: wait that long.
            after_commit = not await run.faults.kill_worker_after_commit(0, wait=12.0)
        else:
            await run.faults.kill_worker(0)
            after_commit = True
