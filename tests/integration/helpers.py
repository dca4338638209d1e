"""Shared helpers for the integration tests: building append requests, reading the log back,
starting account workflows and waiting for them to settle.

Waiting is always bounded polling of the ``state`` query (never a sleep followed by an
assertion), so a slow machine makes tests slower, not flaky.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import reduce
from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory

from activities.contracts import AppendEvents
from activities.rows import STORED_EVENT, StoredEvent
from domain.account import evolve
from domain.events import AccountCreated, Event
from domain.state import AccountState
from workflows.interface import (
    WORKFLOW_TYPE,
    AccountView,
    AccountWorkflowInput,
    CommandOutcome,
    OpenOutcome,
    workflow_id,
)

SETTLE_TIMEOUT = 10.0


def fold(state: AccountState, events: Iterable[Event]) -> AccountState:
    """``state`` after ``events``, in order."""
    return reduce(evolve, events, state)


def new_account_id() -> str:
    """An account id unique across the session: the dev server is shared by every test."""
    return f"acc-{uuid.uuid4().hex[:12]}"


def append_request(before: AccountState, events: list[Event]) -> AppendEvents:
    """The ``AppendEvents`` a correct writer would send to record ``events`` after ``before``."""
    return AppendEvents.recording(before, events, fold(before, events))


def created(account_id: str, currency: str = "USD", overdraft_limit: int = 0) -> AccountCreated:
    return AccountCreated(account_id=account_id, currency=currency, overdraft_limit=overdraft_limit)


@dataclass(frozen=True)
class EventRow:
    version: int
    event_type: str
    command_id: str | None
    payload: dict[str, Any]


async def fetch_events(pool: AsyncConnectionPool, account_id: str) -> list[EventRow]:
    """The account's log as stored, in version order."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT version, event_type, command_id, payload FROM account_events"
            " WHERE account_id = %s ORDER BY version",
            (account_id,),
        )
        return [EventRow(*row) for row in await cursor.fetchall()]


async def fetch_stored(pool: AsyncConnectionPool, account_id: str) -> list[StoredEvent]:
    """The account's log as ``StoredEvent`` rows, in version order."""
    async with pool.connection() as conn:
        cursor = await conn.execute(f"SELECT {STORED_EVENT} FROM account_events"
                                    " WHERE account_id = %s ORDER BY version", (account_id,))
        return [StoredEvent(*row) for row in await cursor.fetchall()]


async def count_events(pool: AsyncConnectionPool, account_id: str | None = None) -> int:
    async with pool.connection() as conn:
        if account_id is None:
            cursor = await conn.execute("SELECT count(*) FROM account_events")
        else:
            cursor = await conn.execute(
                "SELECT count(*) FROM account_events WHERE account_id = %s", (account_id,))
        row = await cursor.fetchone()
        assert row is not None  # count(*) always returns one row
        (count,) = row
        return count


async def fetch_account_row(pool: AsyncConnectionPool, account_id: str) -> dict[str, Any] | None:
    """The ``accounts`` projection row, or None."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT account_id, currency, balance, version, status, overdraft_limit, updated_at"
            " FROM accounts WHERE account_id = %s",
            (account_id,),
        )
        row = await cursor.fetchone()
        if row is None:
            return None
        assert cursor.description is not None  # a SELECT has a result description
        names = [column.name for column in cursor.description]
        return dict(zip(names, row, strict=False))


async def start_account(
    client: Client, task_queue: str, account_id: str, currency: str = "USD", **options: Any
) -> WorkflowHandle:
    """Start the account's workflow and return once it has opened the account."""
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        AccountWorkflowInput(account_id=account_id, currency=currency, **options),
        id=workflow_id(account_id),
        task_queue=task_queue,
    )
    await update(handle, "opened", result_type=OpenOutcome)
    return handle


async def update(handle: WorkflowHandle, name: str, *arg: Any, result_type: type = CommandOutcome,
                 timeout: float = SETTLE_TIMEOUT, **options: Any) -> Any:
    """``execute_update`` bounded by ``timeout``, so a regression fails the test instead of
    hanging the suite."""
    return await asyncio.wait_for(
        handle.execute_update(name, *arg, result_type=result_type, **options), timeout)


async def workflow_result(handle: WorkflowHandle, timeout: float = SETTLE_TIMEOUT) -> Any:
    """``handle.result()`` bounded by ``timeout``."""
    return await asyncio.wait_for(handle.result(), timeout)


async def wait_settled(handle: WorkflowHandle, version: int,
                       timeout: float = SETTLE_TIMEOUT) -> AccountView:
    """Poll the ``state`` query until the inbox is empty and the state is at ``version``.

    Fails with the last view seen if that does not happen within ``timeout`` seconds, and
    immediately if the version goes past the expected one (more events than expected).
    """
    deadline = time.monotonic() + timeout
    view: AccountView | None = None
    while True:
        view = await handle.query("state", result_type=AccountView)
        if view.pending_commands == 0 and view.version == version:
            return view
        assert view.version <= version, f"more events than expected: {view}"
        if time.monotonic() > deadline:
            raise AssertionError(f"workflow did not settle at version {version}: {view}")
        await asyncio.sleep(0.02)


async def history_events(handle: WorkflowHandle, event_type: EventType.ValueType) -> list:
    """Events of one type in the history of the handle's run (its latest run if it has no
    run id; a handle from ``client.get_workflow_handle(id, run_id=...)`` reads one run)."""
    history = await handle.fetch_history()
    return [event for event in history.events if event.event_type == event_type]


async def scheduled_activities(handle: WorkflowHandle, name: str) -> int:
    """How many times the handle's run called the activity ``name``: scheduled as a regular
    activity, or run as a local one (recorded as a marker that names the activity type)."""
    history = await handle.fetch_history()
    return sum(1 for event in history.events if _activity_type(event) == name)


def _activity_type(event) -> str | None:
    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        return event.activity_task_scheduled_event_attributes.activity_type.name
    if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
        details = event.marker_recorded_event_attributes.details
        if "data" in details:
            return json.loads(details["data"].payloads[0].data).get("activity_type")
    return None


async def assert_no_failed_workflow_tasks(handle: WorkflowHandle) -> None:
    """A failed workflow task means non-determinism or a bug that would leave the workflow stuck."""
    assert await history_events(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED) == []


async def all_runs(client: Client, handle: WorkflowHandle) -> list[WorkflowHistory]:
    """Every run's history, oldest first, following continue-as-new from the first run."""
    histories, run_id = [], handle.first_execution_run_id
    while run_id:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        run_id = (last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                  if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
                  else None)
    return histories
