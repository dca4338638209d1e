"""Billing periods on the time-skipping test server, with a real Postgres event store.

Months pass in a fraction of a second: ``env.sleep`` moves the server's clock, firing the
account workflows' durable timers on the way. Every assertion is on the event log
(``account_events``) and on the numbers the service handed out (``document_numbers``).
Expected period ends come from ``domain.periods`` applied to the ``opened_at`` the workflow
recorded, and some are also written out by hand.

What the time-skipping server does not do, found while writing these (README, "Tests"):
its operator service lists no search attributes (``ensure_search_attributes`` fails with
UNIMPLEMENTED; adding them works, see ``skipping_env``); it never moves a workflow task off a
stopped worker's sticky queue, so a worker meant to be stopped here runs without a cache; and
it does not advance time while a workflow task waits for a worker. Periods that pass while no
worker runs are therefore proved on the dev server (``test_periods_missed_while_no_worker_runs...``).
"""

from __future__ import annotations

import asyncio
import calendar
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.db import open_pool
from domain.periods import BillingPeriod
from tests.integration.helpers import (
    EventRow,
    all_runs,
    assert_no_failed_workflow_tasks,
    count_events,
    fetch_events,
    new_account_id,
    start_account,
    update,
    wait_settled,
)
from worker import build_worker
from workflows.interface import (
    COMMAND_REJECTED,
    IDEMPOTENCY_KEY_REUSED,
    INVALID_ACCOUNT,
    WORKFLOW_TYPE,
    AccountWorkflowInput,
    PeriodClosed,
    workflow_id,
)
from workflows.visibility import SEARCH_ATTRIBUTES

BIN = Path(sys.executable).parent
LOG_TIMEOUT = 20.0
MONEY_EVENTS = {"FUND_ADDED", "CHARGE_APPLIED", "CHARGE_DECLINED", "REFUND_APPLIED", "BALANCE_PAID_OUT"}
NUMBER = re.compile(r"^(INV|CN)-(\d{4})-(\d{6})$")


@pytest.fixture
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server of this test's own: its clock only moves forward."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(BIN / "temporal-test-server"))
    # ensure_search_attributes lists them first, which this server does not implement.
    await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace="default", search_attributes={
            key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in SEARCH_ATTRIBUTES}))
    yield env
    await env.shutdown()


@pytest.fixture
def skipping(skipping_env: WorkflowEnvironment) -> Client:
    return skipping_env.client


@pytest.fixture
async def skipping_worker(skipping: Client, worker_pool, task_queue: str):
    async with build_worker(skipping, worker_pool, task_queue) as running:
        yield running


# --- helpers -----------------------------------------------------------------------------------

async def advance_to(env: WorkflowEnvironment, moment: datetime) -> None:
    """Move the server's clock to ``moment``, firing every timer due on the way."""
    now = await env.get_current_time()
    if moment > now:
        await env.sleep(moment - now)


async def wait_for_log(pool: AsyncConnectionPool, account: str, done: Callable[[list[EventRow]], bool],
                       timeout: float = LOG_TIMEOUT) -> list[EventRow]:
    """Poll the account's log until ``done(rows)``; fail with the log if it does not come."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await fetch_events(pool, account)
        if done(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError("the log never got there:\n" + "\n".join(map(str, rows)))
        await asyncio.sleep(0.05)


def of_type(rows: list[EventRow], event_type: str) -> list[EventRow]:
    return [row for row in rows if row.event_type == event_type]


def finalized(count: int) -> Callable[[list[EventRow]], bool]:
    return lambda rows: len(of_type(rows, "INVOICE_FINALIZED")) >= count


def drafts(rows: list[EventRow]) -> dict[int, dict[str, Any]]:
    return {row.payload["sequence"]: row.payload for row in of_type(rows, "INVOICE_DRAFTED")}


def numbers(rows: list[EventRow]) -> dict[int, str]:
    return {row.payload["sequence"]: row.payload["number"] for row in of_type(rows, "INVOICE_FINALIZED")}


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def opened_at(rows: list[EventRow]) -> datetime:
    assert rows[0].event_type == "ACCOUNT_CREATED"
    return instant(rows[0].payload["opened_at"])


def invoice_of(rows: list[EventRow], command_id: str) -> int:
    """The sequence of the one invoice whose versions cover the event of ``command_id``."""
    [version] = [row.version for row in rows if row.command_id == command_id]
    covering = [seq for seq, draft in drafts(rows).items()
                if draft["first_version"] <= version <= draft["last_version"]]
    assert len(covering) == 1, (command_id, covering)
    return covering[0]


def assert_invoices_consistent(rows: list[EventRow]) -> None:
    """The account's invoices tile its log: sequences 1..n, each drafted and finalized once,
    version ranges back to back from version 1, each period starting where the last ended."""
    drafted = Counter(row.payload["sequence"] for row in of_type(rows, "INVOICE_DRAFTED"))
    final = Counter(row.payload["sequence"] for row in of_type(rows, "INVOICE_FINALIZED"))
    assert list(drafted) == list(range(1, len(drafted) + 1)) and set(drafted.values()) == {1}, drafted
    assert set(final.values()) <= {1} and set(final) <= set(drafted), final
    expected_first, expected_start = 1, opened_at(rows)
    for row in of_type(rows, "INVOICE_DRAFTED"):
        draft = row.payload
        assert draft["first_version"] == expected_first, draft
        assert draft["last_version"] == row.version - 1, (row.version, draft)  # all before it
        assert instant(draft["period_start"]) == expected_start, draft
        assert instant(draft["period_end"]) > expected_start, draft
        expected_first, expected_start = draft["last_version"] + 1, instant(draft["period_end"])


async def document_numbers(pool: AsyncConnectionPool, kind: str) -> list[tuple[str, int, str, str]]:
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT series, number, account_id, formatted FROM document_numbers"
                                    " WHERE kind = %s ORDER BY series, number", (kind,))
        return list(await cursor.fetchall())


async def assert_gapless(pool: AsyncConnectionPool, kind: str, issued: list[str]) -> None:
    """Every series of ``kind`` holds exactly 1..n, and each number went to exactly one
    document of the log (``issued``: every number the log's events carry)."""
    rows = await document_numbers(pool, kind)
    by_series: dict[str, list[int]] = {}
    for series, number, _, formatted in rows:
        by_series.setdefault(series, []).append(number)
        assert formatted == f"{series}-{number:06d}"
    for series, taken in by_series.items():
        assert taken == list(range(1, len(taken) + 1)), (series, taken)
    assert Counter(issued) == Counter(formatted for *_, formatted in rows), "numbers without a document"


def month_end_clamped(year: int, month: int, day: int) -> int:
    return min(day, calendar.monthrange(year, month)[1])


# --- periods pass --------------------------------------------------------------------------------

async def test_three_monthly_periods_pass_in_seconds_with_calendar_month_ends(
        skipping_env, skipping, task_queue, skipping_worker, pool):
    now = await skipping_env.get_current_time()
    year = now.year + 1  # the next 31 January, at 10:00 UTC
    await advance_to(skipping_env, datetime(year, 1, 31, 10, tzinfo=UTC))
    account = new_account_id()
    await start_account(skipping, task_queue, account, billing_period="monthly")

    await skipping_env.sleep(timedelta(days=100))
    rows = await wait_for_log(pool, account, finalized(3))

    opened = opened_at(rows)
    assert (opened.year, opened.month, opened.day, opened.hour) == (year, 1, 31, 10)
    monthly = BillingPeriod.parse("monthly")
    ends = [instant(drafts(rows)[seq]["period_end"]) for seq in (1, 2, 3)]
    assert ends == [monthly.end(opened, n) for n in (1, 2, 3)]
    february = 29 if calendar.isleap(year) else 28  # by hand: clamped to each month's last day
    assert ends == [opened.replace(month=2, day=february), opened.replace(month=3, day=31),
                    opened.replace(month=4, day=30)]
    assert_invoices_consistent(rows)
    assert list(numbers(rows).values())[:3] == [f"INV-{year}-{n:06d}" for n in (1, 2, 3)]


async def test_charges_at_period_boundaries_land_in_the_right_invoice(
        skipping_env, skipping, task_queue, skipping_worker, pool):
    account = new_account_id()
    handle = await start_account(skipping, task_queue, account, billing_period="daily",
                                 invoice_grace_seconds=600)
    await update(handle, "add_funds", {"command_id": "f1", "amount": 10_000})
    rows = await fetch_events(pool, account)
    end1, end2 = (BillingPeriod.parse("daily").end(opened_at(rows), n) for n in (1, 2))

    await advance_to(skipping_env, end1 - timedelta(seconds=1))
    await update(handle, "charge", {"command_id": "last-second", "amount": 100})
    await advance_to(skipping_env, end1 + timedelta(seconds=1))
    await wait_for_log(pool, account, lambda rows: 1 in drafts(rows))
    await update(handle, "charge", {"command_id": "in-grace", "amount": 200})  # invoice 1 not final yet
    await advance_to(skipping_env, end1 + timedelta(seconds=601))
    await wait_for_log(pool, account, finalized(1))
    await update(handle, "charge", {"command_id": "after-final", "amount": 300})
    await advance_to(skipping_env, end2 - timedelta(seconds=1))
    await update(handle, "charge", {"command_id": "end-of-day-2", "amount": 400})
    await advance_to(skipping_env, end2 + timedelta(seconds=601))
    rows = await wait_for_log(pool, account, finalized(2))

    assert [instant(drafts(rows)[seq]["period_end"]) for seq in (1, 2)] == [end1, end2]
    assert {key: invoice_of(rows, key) for key in ("f1", "last-second", "in-grace", "after-final",
                                                   "end-of-day-2")} == {
        "f1": 1, "last-second": 1, "in-grace": 2, "after-final": 2, "end-of-day-2": 2}
    assert_invoices_consistent(rows)
    await assert_no_failed_workflow_tasks(handle)


async def test_an_idle_period_yields_a_zero_invoice_on_time(
        skipping_env, skipping, task_queue, skipping_worker, pool):
    account = new_account_id()
    handle = await start_account(skipping, task_queue, account, billing_period="P7D")
    await update(handle, "add_funds", {"command_id": "f1", "amount": 500})
    rows = await fetch_events(pool, account)
    weekly = BillingPeriod.parse("P7D")
    end1, end2 = weekly.end(opened_at(rows), 1), weekly.end(opened_at(rows), 2)

    await advance_to(skipping_env, end1 + timedelta(seconds=1))
    await wait_for_log(pool, account, finalized(1))
    await advance_to(skipping_env, end2 - timedelta(seconds=1))
    assert 2 not in drafts(await fetch_events(pool, account))  # not early
    await advance_to(skipping_env, end2 + timedelta(seconds=1))
    rows = await wait_for_log(pool, account, finalized(2))

    idle = drafts(rows)[2]
    assert instant(idle["period_start"]) == end1 and instant(idle["period_end"]) == end2
    covered = [row for row in rows if idle["first_version"] <= row.version <= idle["last_version"]]
    # Only the bookkeeping of invoice 1 (its draft and finalization) happened in period 2.
    assert [row.event_type for row in covered] == ["INVOICE_DRAFTED", "INVOICE_FINALIZED"]
    assert not MONEY_EVENTS & {row.event_type for row in covered}
    assert numbers(rows)[2] == numbers(rows)[1][:-6] + "000002"
    assert_invoices_consistent(rows)


async def test_a_draft_is_finalized_after_the_grace_period_under_a_formatted_number(
        skipping_env, skipping, task_queue, skipping_worker, pool):
    account = new_account_id()
    handle = await start_account(skipping, task_queue, account, billing_period="daily",
                                 invoice_grace_seconds=3600)
    await update(handle, "add_funds", {"command_id": "f1", "amount": 500})
    end1 = BillingPeriod.parse("daily").end(opened_at(await fetch_events(pool, account)), 1)

    await advance_to(skipping_env, end1 + timedelta(seconds=1))
    rows = await wait_for_log(pool, account, lambda rows: 1 in drafts(rows))
    await advance_to(skipping_env, end1 + timedelta(seconds=3599))
    assert of_type(await fetch_events(pool, account), "INVOICE_FINALIZED") == []  # still in grace
    await advance_to(skipping_env, end1 + timedelta(seconds=3601))
    rows = await wait_for_log(pool, account, finalized(1))

    [draft_row] = of_type(rows, "INVOICE_DRAFTED")
    [final_row] = of_type(rows, "INVOICE_FINALIZED")
    assert final_row.version == draft_row.version + 1
    assert final_row.payload == {"sequence": 1, "number": f"INV-{end1.year}-000001"}
    assert NUMBER.match(final_row.payload["number"])
    await assert_gapless(pool, "invoice", [final_row.payload["number"]])


# --- gapless numbers ------------------------------------------------------------------------------

async def test_numbers_stay_gapless_across_continue_as_new(
        skipping_env, skipping, task_queue, skipping_worker, pool):
    account = new_account_id()
    handle = await start_account(skipping, task_queue, account, billing_period="daily",
                                 history_budget=10, invoice_grace_seconds=60)
    await update(handle, "add_funds", {"command_id": "f0", "amount": 10_000})
    for day in range(1, 7):
        await handle.signal("charge", {"command_id": f"c{day}", "amount": day})
        await update(handle, "charge", {"command_id": f"d{day}", "amount": 10})
        await skipping_env.sleep(timedelta(days=1))
    await skipping_env.sleep(timedelta(minutes=2))  # the last draft's grace
    rows = await wait_for_log(pool, account, finalized(6))

    assert len(await all_runs(skipping, handle)) >= 3, "expected several continue-as-new runs"
    assert_invoices_consistent(rows)
    assert [invoice_of(rows, f"c{day}") for day in range(1, 7)] == [1, 2, 3, 4, 5, 6]
    await assert_gapless(pool, "invoice", list(numbers(rows).values()))


async def test_numbers_stay_gapless_across_a_worker_restart_with_a_draft_in_grace(
        skipping_env, skipping, task_queue, worker_pool, pool):
    account = new_account_id()
    # No cache: this server never moves a task off a stopped worker's sticky queue (module doc).
    async with build_worker(skipping, worker_pool, task_queue, max_cached_workflows=0):
        handle = await start_account(skipping, task_queue, account, billing_period="daily",
                                     invoice_grace_seconds=7200)
        await update(handle, "add_funds", {"command_id": "f1", "amount": 1_000})
        end1 = BillingPeriod.parse("daily").end(opened_at(await fetch_events(pool, account)), 1)
        await advance_to(skipping_env, end1 + timedelta(seconds=7201))
        await wait_for_log(pool, account, finalized(1))
        await advance_to(skipping_env, end1 + timedelta(days=1, seconds=10))
        await wait_for_log(pool, account, lambda rows: 2 in drafts(rows))  # drafted, in grace
    async with build_worker(skipping, worker_pool, task_queue):
        await update(handle, "charge", {"command_id": "c1", "amount": 5})
        await skipping_env.sleep(timedelta(days=2, hours=3))
        rows = await wait_for_log(pool, account, finalized(4))

    assert_invoices_consistent(rows)
    assert invoice_of(rows, "c1") == 3
    await assert_gapless(pool, "invoice", list(numbers(rows).values()))


async def test_numbers_stay_gapless_when_fifty_accounts_finalize_at_once(
        skipping_env, skipping, task_queue, worker_pool, worker_db_url, pool):
    accounts = [new_account_id() for _ in range(50)]
    # A second worker, as a second process would be: its own client and pool.
    second_client = await Client.connect(skipping.service_client.config.target_host,
                                         data_converter=pydantic_data_converter)
    second_pool = open_pool(worker_db_url)
    await second_pool.open(wait=True)
    try:
        async with build_worker(skipping, worker_pool, task_queue), \
                build_worker(second_client, second_pool, task_queue):
            handles = await asyncio.gather(*(
                start_account(skipping, task_queue, account, billing_period="daily")
                for account in accounts))
            for handle in handles:
                await handle.signal("add_funds", {"command_id": "f1", "amount": 100})
            await skipping_env.sleep(timedelta(days=1, minutes=1))  # 50 period ends, a timer each
            for account in accounts:
                await wait_for_log(pool, account, finalized(1))
            for handle in handles:
                await handle.signal("charge", {"command_id": "c1", "amount": 10})
            closed = await asyncio.gather(*(  # 50 early finalizations racing for numbers
                update(handle, "close_period", result_type=PeriodClosed, timeout=60)
                for handle in handles))
    finally:
        await second_pool.close()

    issued: list[str] = []
    for account, answer in zip(accounts, closed, strict=True):
        rows = await fetch_events(pool, account)
        assert_invoices_consistent(rows)
        assert sorted(numbers(rows)) == [1, 2]
        assert answer.sequence == 2 and answer.number == numbers(rows)[2]
        issued += numbers(rows).values()
    assert len(issued) == 100
    await assert_gapless(pool, "invoice", issued)


# --- close_period ------------------------------------------------------------------------------------

async def test_close_period_finalizes_early_and_answers_the_number(
        skipping_env, skipping, task_queue, skipping_worker, pool):
    account = new_account_id()
    handle = await start_account(skipping, task_queue, account, billing_period="monthly",
                                 invoice_grace_seconds=86_400)
    await update(handle, "add_funds", {"command_id": "f1", "amount": 700})
    await skipping_env.sleep(timedelta(days=3))

    closed = await update(handle, "close_period", result_type=PeriodClosed)

    rows = await fetch_events(pool, account)
    assert [row.event_type for row in rows] == [
        "ACCOUNT_CREATED", "FUND_ADDED", "INVOICE_DRAFTED", "INVOICE_FINALIZED"]
    assert closed.sequence == 1 and closed.number == numbers(rows)[1]
    assert closed.period_start == opened_at(rows)
    assert closed.period_end == instant(drafts(rows)[1]["period_end"])
    assert closed.period_end - closed.period_start >= timedelta(days=3)
    assert NUMBER.match(closed.number or "")
    # The next period runs on from the early end, to the anchored monthly end.
    await update(handle, "charge", {"command_id": "c1", "amount": 7})
    await advance_to(skipping_env, BillingPeriod.parse("monthly").end(opened_at(rows), 1)
                     + timedelta(days=1, seconds=1))
    rows = await wait_for_log(pool, account, finalized(2))
    assert instant(drafts(rows)[2]["period_end"]) == BillingPeriod.parse("monthly").end(opened_at(rows), 1)
    assert invoice_of(rows, "c1") == 2
    assert_invoices_consistent(rows)
    await assert_gapless(pool, "invoice", list(numbers(rows).values()))


# --- refunds and credit notes -------------------------------------------------------------------------

async def refund_error(handle: WorkflowHandle, payload: dict[str, Any]) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await update(handle, "refund", payload)
    assert isinstance(info.value.cause, ApplicationError), info.value.cause
    return info.value.cause


async def test_a_late_refund_issues_exactly_one_credit_note_linked_to_its_invoice(
        skipping_env, skipping, task_queue, skipping_worker, pool):
    account = new_account_id()
    handle = await start_account(skipping, task_queue, account, billing_period="daily")
    await update(handle, "add_funds", {"command_id": "f1", "amount": 1_000})
    await update(handle, "charge", {"command_id": "c1", "amount": 300, "description": "plan"})
    await skipping_env.sleep(timedelta(days=1, seconds=1))
    rows = await wait_for_log(pool, account, finalized(1))
    invoice_number = numbers(rows)[1]

    refund = {"command_id": "r1", "charge_id": "c1", "amount": 120, "description": "goodwill"}
    first = await update(handle, "refund", refund)
    again = await update(handle, "refund", refund)
    await handle.signal("refund", refund)
    await update(handle, "charge", {"command_id": "c2", "amount": 50})  # behind the signal
    early = await update(handle, "refund", {"command_id": "r2", "charge_id": "c2", "amount": 50})

    rows = await fetch_events(pool, account)
    notes = of_type(rows, "CREDIT_NOTE_ISSUED")
    [refunded] = [row for row in rows if row.command_id == "r1"]
    assert (first.status, first.balance) == ("applied", 820)
    # The answer's version is the last event the refund recorded (its note); a duplicate's is
    # the event that recorded its key (the refund itself).
    assert (first.version, again.status, again.version) == (notes[0].version, "duplicate", refunded.version)
    assert [row.payload for row in notes] == [{
        "number": f"CN-{NUMBER.match(invoice_number).group(2)}-000001",
        "invoice_number": invoice_number, "invoice_sequence": 1, "amount": 120, "refund_id": "r1"}]
    assert [row.command_id for row in of_type(rows, "REFUND_APPLIED")] == ["r1", "r2"]
    assert early.status == "applied" and early.balance == 820  # c2 not invoiced yet: no note
    await assert_gapless(pool, "credit_note", [row.payload["number"] for row in notes])
    await assert_no_failed_workflow_tasks(handle)


async def test_refused_refunds_record_no_refund_and_consume_no_number(
        skipping_env, skipping, task_queue, skipping_worker, pool):
    account = new_account_id()
    handle = await start_account(skipping, task_queue, account, billing_period="daily")
    await update(handle, "add_funds", {"command_id": "f1", "amount": 1_000})
    await update(handle, "charge", {"command_id": "c1", "amount": 300})
    await skipping_env.sleep(timedelta(days=1, seconds=1))
    await wait_for_log(pool, account, finalized(1))
    await update(handle, "refund", {"command_id": "r1", "charge_id": "c1", "amount": 100})
    before = await wait_settled(handle, (await count_events(pool, account)))

    over = await refund_error(handle, {"command_id": "r2", "charge_id": "c1", "amount": 201})
    unknown = await refund_error(handle, {"command_id": "r3", "charge_id": "nope", "amount": 1})
    reused = await refund_error(handle, {"command_id": "r1", "charge_id": "c1", "amount": 99})
    charge_key = await refund_error(handle, {"command_id": "c1", "charge_id": "c1", "amount": 1})
    currency = await refund_error(handle, {"command_id": "r4", "charge_id": "c1", "amount": 1,
                                           "currency": "EUR"})
    then = await update(handle, "refund", {"command_id": "r5", "charge_id": "c1", "amount": 200})

    assert (over.type, unknown.type, currency.type) == (COMMAND_REJECTED,) * 3
    assert "more than the 200 left" in over.message and "'nope'" in unknown.message
    assert "EUR" in currency.message
    assert (reused.type, charge_key.type) == (IDEMPOTENCY_KEY_REUSED,) * 2
    assert over.non_retryable and reused.non_retryable
    rows = await fetch_events(pool, account)
    assert [row.command_id for row in of_type(rows, "REFUND_APPLIED")] == ["r1", "r5"]
    assert [row.command_id for row in rows[before.version:]] == ["r2", "r3", "r4", "r5", None]
    assert [row.event_type for row in rows[before.version:]] == [
        "COMMAND_REJECTED", "COMMAND_REJECTED", "COMMAND_REJECTED", "REFUND_APPLIED", "CREDIT_NOTE_ISSUED"]
    assert then.balance == before.balance + 200
    notes = [row.payload["number"] for row in of_type(rows, "CREDIT_NOTE_ISSUED")]
    assert [number[-6:] for number in notes] == ["000001", "000002"]  # nothing taken in between
    await assert_gapless(pool, "credit_note", notes)


# --- bad periods -----------------------------------------------------------------------------------

@pytest.mark.parametrize("period", ["P0D", "monthly2", "PT-1S", "P", "P11Y"])
async def test_a_malformed_billing_period_fails_the_start_and_records_nothing(
        skipping, task_queue, skipping_worker, pool, period: str):
    account = new_account_id()
    handle = await skipping.start_workflow(
        WORKFLOW_TYPE, AccountWorkflowInput(account_id=account, currency="USD", billing_period=period),
        id=workflow_id(account), task_queue=task_queue)

    with pytest.raises(WorkflowFailureError) as info:
        await asyncio.wait_for(handle.result(), LOG_TIMEOUT)

    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == INVALID_ACCOUNT, cause
    assert "billing period" in cause.message and repr(period) in cause.message
    assert await count_events(pool, account) == 0
    assert await document_numbers(pool, "invoice") == []


# --- the dev server: periods that pass while no worker runs ------------------------------------------

async def test_periods_missed_while_no_worker_runs_are_each_invoiced_after_a_restart(
        client, task_queue, worker_pool, pool):
    """On the dev server (real time, PT1S periods): the first worker, with its cache and sticky
    queue, stops after a few invoices; periods end while none runs; the next worker drafts
    every missed period on its own, before the commands waiting for it, numbers gapless. Closing
    ends the periods for the check."""
    account = new_account_id()
    async with build_worker(client, worker_pool, task_queue):
        handle = await start_account(client, task_queue, account, billing_period="PT1S")
        await update(handle, "add_funds", {"command_id": "f1", "amount": 100})
        await wait_for_log(pool, account, finalized(2))
    stopped = len(of_type(await fetch_events(pool, account), "INVOICE_DRAFTED"))
    await asyncio.sleep(2.5)  # at least two periods end with no worker
    restarted = datetime.now(UTC)  # the dev server runs on this machine's clock
    async with build_worker(client, worker_pool, task_queue):
        await update(handle, "charge", {"command_id": "c1", "amount": 100}, timeout=30)
        await update(handle, "close", {"command_id": "bye", "reason": "test"})
        await asyncio.wait_for(handle.result(), LOG_TIMEOUT)  # closed and billed: the run ends

    rows = await fetch_events(pool, account)
    assert_invoices_consistent(rows)
    assert sorted(numbers(rows)) == sorted(drafts(rows)), "every invoice final once closed"
    ends = [instant(draft["period_end"]) for draft in drafts(rows).values()]
    period = BillingPeriod.parse("PT1S")
    anchored = [end for end in ends[:-1] if end in {period.end(opened_at(rows), n) for n in range(1, 999)}]
    assert len(anchored) >= stopped + 2, (stopped, ends)  # the missed periods, one draft each
    # A charge made after the restart is not billed in a period that had ended before it.
    assert instant(drafts(rows)[invoice_of(rows, "c1")]["period_end"]) > restarted, (
        invoice_of(rows, "c1"), ends, restarted)
    await assert_gapless(pool, "invoice", list(numbers(rows).values()))
