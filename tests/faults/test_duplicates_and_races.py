"""One command id sent more than once, and many charges racing for one balance.

Duplicates come at once (two senders, any two paths), after the worker was SIGKILLed and while
no worker runs, across continue-as-new, and after the workflow has forgotten the id (more than
``COMMANDS_KEPT`` newer ones), where only UNIQUE(account_id, command_id) knows it. Each
must be applied exactly once and answered ``duplicate`` with the version that recorded it.

The race: 200 charges of 10 against a balance of 1,000, all at once by every path, while two
workers share the queue and Postgres drops connections right after a commit. Exactly the ones
that fit are applied, every other one is recorded as CHARGE_DECLINED, and the balance never
passes ``-overdraft_limit``.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import pytest
from temporalio.exceptions import ApplicationError

from activities.contracts import VERSION_CONFLICT, AppendEvents, NewEvent
from activities.event_store import EventStore
from domain.events import AccountCreated, FundsAdded
from domain.memory import COMMANDS_KEPT
from domain.state import AccountStatus
from tests.faults.harness import (
    LOCAL,
    PATHS,
    REGULAR,
    Command,
    Run,
    Stack,
    deliver,
    soak_minutes,
)
from workflows.interface import ADD_FUNDS, CHARGE, AccountView

TWICE = 40  # commands each sent twice at once, then again after a worker kill
PAIRS_AT_ONCE = 8
FILLER = 40  # single signals, enough to make a history_budget=30 run continue as new many times
BATCH = 700
RACERS, PRICE, FUNDS = 200, 10, 1_000


async def test_same_command_id_is_applied_once(stack: Stack, seed: int, report_summary) -> None:
    await stack.start(workers=1)
    async with Run("duplicates", seed, stack, report_summary) as run:
        await _duplicates(run, random.Random(seed), "r0")
        await _forgotten_duplicates(run, random.Random(seed))
        await run.check()  # every account, for the summary line


async def test_concurrent_charges_race_for_one_balance(stack: Stack, seed: int,
                                                       report_summary) -> None:
    await stack.start(workers=2)
    async with Run("racing-charges", seed, stack, report_summary) as run:
        await _race(run, random.Random(seed), "r0", local_activities=False)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
async def test_concurrent_charges_race_with_local_activities(stack: Stack, seed: int, workers: int,
                                                             report_summary) -> None:
    """The same race on accounts with local activities (the default since 7964d90): 400
    callers keep far more than Temporal's 10 updates in flight per workflow. Server 1.32 answers
    the 11th by dropping the workflow's cached state, aborting the updates in flight and losing
    the speculative task they started; with local activities and two workers that cycle stalled
    an account for minutes (270-365 of 402 commands acknowledged in 150 s), until a crowded
    workflow (CROWDED updates waiting) began to store with regular activities."""
    await stack.start(workers=workers)
    async with Run(f"racing-charges-local-{workers}w", seed, stack, report_summary) as run:
        await _race(run, random.Random(seed), "r0", local_activities=True)


async def test_an_append_is_a_retry_only_if_its_events_are_stored(pool) -> None:
    """What ``test_concurrent_charges_race_with_local_activities`` runs into, without Temporal.
    A local activity appended command "a" at version 2 and its workflow task was refused. The
    retried task replays from version 1 and may meet other updates first (they are not in the
    history until accepted): it sends command "b" for version 2. Even with the same event id
    (ids were once drawn with ``workflow.uuid4()``, the same draw for the same place), the
    append must not answer "appended" for "b"."""
    store, account = EventStore(pool), f"ids-{uuid.uuid4().hex[:8]}"
    ids = [uuid.uuid4() for _ in range(2)]

    def request(expected: int, *events: NewEvent) -> AppendEvents:
        return AppendEvents(account_id=account, expected_version=expected, balance=100,
                            status=AccountStatus.OPEN, currency="USD", overdraft_limit=0,
                            events=list(events))

    opened = NewEvent(event_id=ids[0], event=AccountCreated(account_id=account, currency="USD"))
    assert (await store.append_events(request(0, opened))).appended
    lost_task = NewEvent(event_id=ids[1], event=FundsAdded(command_id="a", amount=100))
    assert (await store.append_events(request(1, lost_task))).appended
    retried_task = NewEvent(event_id=ids[1], event=FundsAdded(command_id="b", amount=100))
    try:
        result = await store.append_events(request(1, retried_task))
    except ApplicationError as conflict:  # the workflow reloads from the log: nothing lost
        assert conflict.type == VERSION_CONFLICT
        return
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT command_id FROM account_events WHERE account_id = %s ORDER BY version", (account,))
        logged = [command_id for (command_id,) in await cursor.fetchall()]
    assert "b" in logged, f"append_events answered {result} for command b; the log holds {logged}"


@pytest.mark.slow
async def test_duplicates_and_races_soak(stack: Stack, seed: int, report_summary) -> None:
    """Duplicate rounds and race rounds, alternately, for ``BILLING_SOAK_MINUTES``."""
    await stack.start(workers=2)
    rng = random.Random(seed)
    stop_at = time.monotonic() + soak_minutes() * 60
    async with Run("duplicates-and-races-soak", seed, stack, report_summary) as run:
        round_index = 0
        while round_index == 0 or time.monotonic() < stop_at:
            await _duplicates(run, rng, f"r{round_index}")
            await _race(run, rng, f"r{round_index}", local_activities=False)
            round_index += 1
        await _forgotten_duplicates(run, rng)
        await run.check(declines_expected=True)  # the race accounts have declines


async def _duplicates(run: Run, rng: random.Random, prefix: str) -> None:
    stack, ledger = run.stack, run.ledger
    accounts = await run.open_accounts(f"{prefix}-dup", 2, options=[REGULAR, LOCAL])
    commands = [ledger.record(f"{prefix}-twice-{index}", rng.choice(accounts),
                              rng.choice((ADD_FUNDS, CHARGE)), rng.randint(1, 10_000),
                              rng.choice(PATHS)) for index in range(TWICE)]
    # Twice at once: the same id by two senders, each by its own path (maybe the same one),
    # a few pairs at a time: a storm of updates is test_concurrent_charges_race_*'s business.
    pairs = asyncio.Semaphore(PAIRS_AT_ONCE)

    async def twice(command: Command) -> None:
        async with pairs:
            await asyncio.gather(deliver(stack, ledger, [command]),
                                 deliver(stack, ledger, [command], rng.choice(PATHS)))

    await asyncio.gather(*(twice(command) for command in commands))
    await run.check(accounts)
    answered = {command.command_id: len(command.outcomes) for command in commands}
    # Again, after a SIGKILL: sent while no worker runs (signals are taken in, updates wait),
    # and a new worker, with nothing in memory, must still know them all.
    await run.faults.kill_worker(0, restart=False)
    again = asyncio.gather(*(deliver(stack, ledger, [command], rng.choice(PATHS))
                             for command in commands))
    await asyncio.sleep(1.0)
    assert stack.workers is not None  # the calling test started them
    stack.workers.restart(0)
    await again
    await run.check(accounts)
    late = [outcome.status for command in commands
            for outcome in command.outcomes[answered[command.command_id]:]]
    assert late and set(late) == {"duplicate"}, late


async def _forgotten_duplicates(run: Run, rng: random.Random) -> None:
    """Across continue-as-new, then after ``COMMANDS_KEPT`` newer command ids."""
    stack, ledger = run.stack, run.ledger
    (account,) = await run.open_accounts("dup-can", 1, options=[{"history_budget": 30}])
    first_run = (await stack.handle(account).describe()).run_id
    original = ledger.record("original", account, ADD_FUNDS, 4_242, "update")
    await deliver(stack, ledger, [original])
    for index in range(FILLER):  # one at a time: each costs the history a task and an activity
        await deliver(stack, ledger, [_filler(ledger, account, rng, index)])
    await run.check([account])
    assert (await stack.handle(account).describe()).run_id != first_run, "never continued as new"
    await _send_by_every_path(run, original)

    crowd = [ledger.record(f"crowd-{index}", account, ADD_FUNDS, 1, "batch-signal")
             for index in range(COMMANDS_KEPT + 100)]
    for start in range(0, len(crowd), BATCH):
        await deliver(stack, ledger, crowd[start:start + BATCH])
    await run.check([account])
    await _send_by_every_path(run, original)


async def _send_by_every_path(run: Run, command: Command) -> None:
    answered = len(command.outcomes)
    for path in PATHS:
        await deliver(run.stack, run.ledger, [command], path)
    await run.check([command.account_id])
    late = command.outcomes[answered:]
    assert [outcome.status for outcome in late] == ["duplicate", "duplicate"], late  # update, client
    assert {outcome.version for outcome in command.outcomes} == {command.outcomes[0].version}


def _filler(ledger, account: str, rng: random.Random, index: int) -> Command:
    return ledger.record(f"filler-{index}", account, rng.choice((ADD_FUNDS, CHARGE)),
                         rng.randint(1, 1_000), "signal")


async def _race(run: Run, rng: random.Random, prefix: str, *, local_activities: bool) -> None:
    stack, ledger = run.stack, run.ledger
    limits = {f"{prefix}-race": 0, f"{prefix}-race-overdraft": 500}
    for account_id, limit in limits.items():
        await run.open_accounts(account_id, 1, overdraft_limit=limit,
                                options=[LOCAL if local_activities else REGULAR])
    accounts = [f"{account_id}-0" for account_id in limits]
    for account_id in accounts:
        await deliver(stack, ledger, [ledger.record(f"{account_id}-funds", account_id, ADD_FUNDS,
                                                    FUNDS, "update")])
    charges = [ledger.record(f"{account_id}-charge-{index}", account_id, CHARGE, PRICE,
                             PATHS[index % len(PATHS)])
               for account_id in accounts for index in range(RACERS)]
    rng.shuffle(charges)
    dropped = run.faults.drop_connections_after_commit()
    await asyncio.gather(*(deliver(stack, ledger, [charge]) for charge in charges), dropped)
    verdict = await run.check(accounts, declines_expected=True)
    for account_id, limit in zip(accounts, limits.values(), strict=False):
        fits = (FUNDS + limit) // PRICE
        assert verdict.applied[f"{account_id}:CHARGE_APPLIED"] == fits, verdict.applied
        assert verdict.applied[f"{account_id}:CHARGE_DECLINED"] == RACERS - fits, verdict.applied
        view = await stack.handle(account_id).query("state", result_type=AccountView)
        assert view.balance == FUNDS - fits * PRICE >= -limit
        # An update sent again after its answer was lost is answered "duplicate", with the
        # first answer's status; verify() has held every answer against the log already.
        answers = {outcome.original_status if outcome.status == "duplicate" else outcome.status
                   for charge in charges if charge.account_id == account_id
                   for outcome in charge.outcomes}
        assert {"applied", "declined"} <= answers <= {"applied", "declined", None}, answers
