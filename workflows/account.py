"""``AccountWorkflow``: one long-running workflow per account, id ``account-<account_id>``.

The story of a run: load the account from its event log (or take the state handed over by
continue-as-new), open it if the log is empty, then loop: take every command waiting in the
inbox, decide each with the pure core, persist the resulting events in one activity call, and
answer the updates that were waiting for them. Handlers only validate and enqueue.

Every message arrives raw and is decoded here (docs/decisions.md, "Raw payloads").
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from domain.state import AccountState
    from workflows import replies
    from workflows.billing import BILLING_PERIODS, Invoicing
    from workflows.decoding import Undecodable, decode_args, parse_signal
    from workflows.inbox import Inbox
    from workflows.interface import (
        CLOSE,
        CLOSE_PERIOD,
        OPENED,
        POST_BATCH,
        REFUND,
        SIGNALS,
        STATE,
        WORKFLOW_TYPE,
        AccountView,
        AccountWorkflowInput,
        BatchOutcome,
        OpenOutcome,
    )
    from workflows.persistence import Persisting
    from workflows.run_length import COUNT_RUN_LENGTH, RunLength

RECORD_UNREADABLE_SIGNALS = "record-unreadable-signals"
"""Patch: signals that do not decode, or have no handler, are recorded as rejected. Before it,
the SDK dropped the first and buffered the second, so histories from then must not record them."""
REFUND_SIGNALS = "refund-signals"
"""Patch: ``refund`` is a signal. Before it, a ``refund`` signal was unknown (rejected, or dropped
before ``RECORD_UNREADABLE_SIGNALS``), and histories from then must stay that way."""
SIGNALS_BEFORE_REFUNDS = tuple(name for name in SIGNALS if name != REFUND)


# Dynamic, so that run() receives its input undecoded. Named workflows registered on the same
# worker take precedence; any other type fails its task (docs/decisions.md, "Raw payloads").
@workflow.defn(dynamic=True)
class AccountWorkflow(Persisting, Invoicing):
    def __init__(self) -> None:
        self._input: AccountWorkflowInput | None = None  # settings, and the state carried over
        self._account: AccountState | None = None  # None until loaded from the log
        self._opened: OpenOutcome | None = None
        self._inbox = Inbox()
        self._run = RunLength()
        self._bills = False  # set in run(): False for a run from before billing periods
        self._writing = asyncio.Lock()  # one writer at a time: the loop, or close_period

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> None:
        if workflow.info().workflow_type != WORKFLOW_TYPE:
            raise RuntimeError(f"workflow type {workflow.info().workflow_type!r} is not registered"
                               f" on this worker; it runs {WORKFLOW_TYPE!r}")
        self._run.counted = workflow.patched(COUNT_RUN_LENGTH)
        self._input = replies.parse_input(self._received(args))
        self._bills = workflow.patched(BILLING_PERIODS)
        if self._input.snapshot is not None:
            self._account = self._input.snapshot
            if self._bills and self._account.exists and not self._account.billing.bills:
                self._account = await self._load()  # carried from before billing: the log knows
            self._opened = OpenOutcome(created=False, account=AccountView.of(self._account))
        else:
            await self._open()
        while True:
            await self._wait_for_work(lambda: bool(self._inbox))
            async with self._writing:  # close_period may be writing (it waits for this lock)
                if self._inbox:
                    await self._apply_pending()
                await self._bill_due()
            # Asked only here, right after an append, so that a replay asks at the same point.
            if self._run.is_long(self._input.history_budget) and not self._inbox:
                # Only once every update has had its answer; commands that arrive meanwhile go
                # round the loop first, so nothing is left behind.
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() or bool(self._inbox))
                if not self._inbox:
                    assert self._account is not None
                    workflow.continue_as_new(self._input.continued(self._account))

    def _received(self, args: Sequence[RawValue], *, update: bool = False) -> list[Any]:
        """Every input passes here: counted towards the run's length, then decoded."""
        self._run.received(args, update=update)
        return decode_args(args, workflow.payload_converter())

    # --- signals: validate, enqueue, never raise -------------------------------------------

    @workflow.signal(dynamic=True)
    def receive(self, name: str, args: Sequence[RawValue]) -> None:
        """Every signal: ``add_funds``, ``charge``, ``refund``, ``close`` and ``post_batch``. Any
        other name, and a payload that does not decode, is recorded as a rejection."""
        values: Sequence[Any] = self._received(args)
        signals = SIGNALS if name != REFUND or workflow.patched(REFUND_SIGNALS) else SIGNALS_BEFORE_REFUNDS
        unreadable = name not in signals or any(isinstance(v, Undecodable) for v in values)
        if unreadable and not workflow.patched(RECORD_UNREADABLE_SIGNALS):
            workflow.logger.warning("signal %r dropped, as when this history was made", name)
            return
        if name == CLOSE:
            values = replies.with_close_id(values, self._inbox)
        self._inbox.put(parse_signal(name, values, signals))

    # --- updates: the same commands, answered with their outcome ---------------------------

    @workflow.update(dynamic=True)
    async def submit(self, name: str, args: Sequence[RawValue]) -> Any:
        """``add_funds`` and ``charge`` answer a ``CommandOutcome``, ``post_batch`` a
        ``BatchOutcome``, ``opened`` an ``OpenOutcome`` once the account is loaded or created;
        any other name, and malformed input, an ``InvalidCommand`` error."""
        values = self._received(args, update=True)
        if name in (OPENED, CLOSE_PERIOD):
            await workflow.wait_condition(lambda: self._opened is not None)
            return self._opened if name == OPENED else await self._close_period()
        self._run.updates += 1
        commands = self._inbox.validated.pop(replies.update_id(), None)
        if commands is None:  # the validator did not check it: a replay, or a run's first task
            commands = replies.checked_update(name, values)
        tickets = self._inbox.put_awaited(commands)
        self._inbox.updates_waiting += 1
        try:
            await workflow.wait_condition(lambda: self._inbox.answered(tickets))
        finally:
            self._inbox.updates_waiting -= 1
        outcomes = self._inbox.answers(tickets)
        return BatchOutcome(outcomes=outcomes) if name == POST_BATCH else replies.answer(outcomes[0])

    @submit.validator
    def _validate_submit(self, name: str, args: Sequence[RawValue]) -> None:
        # Never refuse in a run's first task (docs/decisions.md, "Validators and the first
        # task"): there the handler fails the update with the same error instead.
        if self._input is None or name in (OPENED, CLOSE_PERIOD):
            return
        commands = replies.checked_update(name, decode_args(args, workflow.payload_converter()))
        # The handler takes these instead of parsing the payload again; on replay (validators do
        # not run) it parses it itself, to the same commands.
        self._inbox.validated[replies.update_id()] = commands

    @workflow.query(name=STATE)
    def state(self) -> AccountView:
        assert self._input is not None
        account = self._account or AccountState(self._input.account_id, self._input.currency,
                                                self._input.overdraft_limit)
        return AccountView.of(account, pending=self._inbox.pending)
