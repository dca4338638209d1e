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
    from domain.account import decide_each
    from domain.state import AccountState, AccountStatus
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
    from workflows.persistence import CLOSE_ENDS_BATCH, Persisting
    from workflows.run_length import COUNT_RUN_LENGTH, RunLength
    from workflows.visibility import UPSERT_SEARCH_ATTRIBUTES, Visibility

RECORD_UNREADABLE_SIGNALS = "record-unreadable-signals"
"""Patch: signals that do not decode, or have no handler, are recorded as rejected. Before it,
the SDK dropped the first and buffered the second, so histories from then must not record them."""
BILL_BEFORE_COMMANDS = "bill-before-commands"
"""Patch: periods that have ended are drafted before the commands waiting are decided, so an
invoice never bills a command decided after its period's end. Before it, the commands went first."""
CLOSED_ACCOUNTS_FINISH = "closed-accounts-finish"
"""Patch: a closed account's run ends once it is drained and billed. Before it, it ran on."""
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
        self._bill_first = self._finish_when_closed = self._close_ends_batch = False  # see run()
        self._visibility = Visibility()  # search attributes and details, for the web UI

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> None:
        """Load or open the account, then serve it: until it is closed and billed (then the
        run ends), or continue-as-new when the history grows long."""
        if workflow.info().workflow_type != WORKFLOW_TYPE:
            raise RuntimeError(f"workflow type {workflow.info().workflow_type!r} is not registered"
                               f" on this worker; it runs {WORKFLOW_TYPE!r}")
        self._run.counted = workflow.patched(COUNT_RUN_LENGTH)
        self._input = replies.parse_input(self._received(args))
        self._bills = workflow.patched(BILLING_PERIODS)
        # Asked here, before the first activity, never later: a patch first asked right after a
        # local activity's result can fall in another workflow task on replay than it did live
        # (docs/decisions.md, "Patches asked at the start").
        self._visibility.upserts = workflow.patched(UPSERT_SEARCH_ATTRIBUTES)
        self._bill_first = workflow.patched(BILL_BEFORE_COMMANDS)
        self._finish_when_closed = workflow.patched(CLOSED_ACCOUNTS_FINISH)
        self._close_ends_batch = workflow.patched(CLOSE_ENDS_BATCH)
        if self._input.snapshot is not None:
            self._account = self._input.snapshot
            if self._bills and self._account.exists and not self._account.billing.bills:
                self._account = await self._load()  # carried from before billing: the log knows
            self._opened = OpenOutcome(created=False, account=AccountView.of(self._account))
        else:
            await self._open()
        assert self._account is not None
        if not self._account.exists:  # revived (``revive``) but never opened: nothing to serve
            await self._answer_without_account()
            return
        self._visibility.show(self._account)
        await self._serve(self._input)

    async def _serve(self, settings: AccountWorkflowInput) -> None:
        while True:
            if self._done() and await self._settled() and self._done():
                return  # closed and billed; a later command revives it (``revive``)
            await self._wait_for_work(lambda: bool(self._inbox))
            async with self._writing:  # close_period may be writing (it waits for this lock)
                if self._inbox and self._bill_first:
                    await self._bill_due()
                if self._inbox:
                    await self._apply_pending()
                await self._bill_due()
            assert self._account is not None
            self._visibility.show(self._account)
            # Asked only here, right after an append, so that a replay asks at the same point.
            if self._run.is_long(settings.history_budget) and not self._inbox and await self._settled():
                workflow.continue_as_new(settings.continued(self._account))

    def _done(self) -> bool:
        """Closed, nothing waiting, every invoice final: the run may end."""
        account = self._account
        return (account is not None and account.status is AccountStatus.CLOSED and not self._inbox
                and self._next_due() is None and self._finish_when_closed)

    async def _settled(self) -> bool:
        """Wait until every update has had its answer; False if commands arrived meanwhile
        (they go round the loop first, so nothing is left behind)."""
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() or bool(self._inbox))
        return not self._inbox

    async def _answer_without_account(self) -> None:
        """A revived run of an account the log does not hold: refuse every command it received
        (``account does not exist``) without recording anything, then end, leaving no workflow."""
        assert self._account is not None
        workflow.logger.warning("account %s is not in the log: refusing its commands",
                                self._account.account_id)
        while self._inbox or not await self._settled():
            batch = self._inbox.take(len(self._inbox.waiting))
            decisions, _ = decide_each(self._account, [pending.command for pending in batch])
            self._inbox.settle(batch, decisions)

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
            if name == OPENED:
                return self._opened
            closed = await self._close_period()
            assert self._account is not None
            self._visibility.show(self._account)
            return closed
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
