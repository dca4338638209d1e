"""``AccountWorkflow``: one long-running workflow per account, id ``account-<account_id>``.

The story of a run: load the account from its event log (or take the state handed over by
continue-as-new), open it if the log is empty, then loop: take every command waiting in the
inbox, decide each with the pure core, persist the resulting events in one activity call, and
answer the updates that were waiting for them. Handlers only validate and enqueue.

Every message arrives raw and is decoded here (docs/decisions.md, "Raw payloads").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.contracts import VERSION_CONFLICT, AppendEvents, AppendResult, LoadAccount
    from activities.event_store import EventStore
    from domain.account import Decision, decide_each
    from domain.commands import Command
    from domain.events import Event
    from domain.state import AccountState
    from workflows import replies
    from workflows.decoding import Undecodable, decode_args, parse_signal
    from workflows.inbox import Inbox, Pending
    from workflows.interface import (
        CLOSE,
        OPENED,
        POST_BATCH,
        SIGNALS,
        STATE,
        WORKFLOW_TYPE,
        AccountView,
        AccountWorkflowInput,
        BatchOutcome,
        OpenOutcome,
    )
    from workflows.run_length import COUNT_RUN_LENGTH, RunLength

# Unlimited attempts: a Postgres outage delays commands, it never loses them. Only a version
# conflict is final, and the workflow answers it by reloading from the log.
STORE_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200),
                          maximum_interval=timedelta(seconds=10),
                          non_retryable_error_types=[VERSION_CONFLICT])
STORE_TIMEOUT = timedelta(seconds=30)
CROWDED = 3
"""Update handlers waiting at once from which the store is called as a regular activity
(docs/decisions.md, "Crowded accounts store with regular activities")."""
CROWDED_UPDATES_USE_REGULAR_ACTIVITIES = "crowded-updates-use-regular-activities"
"""Patch: histories from before it ran every store call as a local activity."""
RECORD_UNREADABLE_SIGNALS = "record-unreadable-signals"
"""Patch: signals that do not decode, or have no handler, are recorded as rejected. Before it,
the SDK dropped the first and buffered the second, so histories from then must not record them."""


# Dynamic, so that run() receives its input undecoded. Named workflows registered on the same
# worker take precedence; any other type fails its task (docs/decisions.md, "Raw payloads").
@workflow.defn(dynamic=True)
class AccountWorkflow:
    def __init__(self) -> None:
        self._input: AccountWorkflowInput | None = None  # settings, and the state carried over
        self._account: AccountState | None = None  # None until loaded from the log
        self._opened: OpenOutcome | None = None
        self._inbox = Inbox()
        self._run = RunLength()

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> None:
        if workflow.info().workflow_type != WORKFLOW_TYPE:
            raise RuntimeError(f"workflow type {workflow.info().workflow_type!r} is not registered"
                               f" on this worker; it runs {WORKFLOW_TYPE!r}")
        self._run.counted = workflow.patched(COUNT_RUN_LENGTH)
        self._input = replies.parse_input(self._received(args))
        if self._input.snapshot is not None:
            self._account = self._input.snapshot
            self._opened = OpenOutcome(created=False, account=AccountView.of(self._account))
        else:
            await self._open()
        while True:
            await workflow.wait_condition(lambda: bool(self._inbox))
            await self._apply_pending()
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
        """Every signal: ``add_funds``, ``charge``, ``close`` and ``post_batch``. Any other name,
        and a payload that does not decode, is recorded as a rejection."""
        values: Sequence[Any] = self._received(args)
        unreadable = name not in SIGNALS or any(isinstance(v, Undecodable) for v in values)
        if unreadable and not workflow.patched(RECORD_UNREADABLE_SIGNALS):
            workflow.logger.warning("signal %r dropped, as when this history was made", name)
            return
        if name == CLOSE:
            values = replies.with_close_id(values, self._inbox)
        self._inbox.put(parse_signal(name, values))

    # --- updates: the same commands, answered with their outcome ---------------------------

    @workflow.update(dynamic=True)
    async def submit(self, name: str, args: Sequence[RawValue]) -> Any:
        """``add_funds`` and ``charge`` answer a ``CommandOutcome``, ``post_batch`` a
        ``BatchOutcome``, ``opened`` an ``OpenOutcome`` once the account is loaded or created;
        any other name, and malformed input, an ``InvalidCommand`` error."""
        values = self._received(args, update=True)
        if name == OPENED:
            await workflow.wait_condition(lambda: self._opened is not None)
            return self._opened
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
        if self._input is None or name == OPENED:
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

    # --- the loop's work ------------------------------------------------------------------

    async def _open(self) -> None:
        assert self._input is not None
        self._account = await self._load()
        created = not self._account.exists
        if created:
            await self._persist([self._input.open_command(workflow.now())])
        self._opened = OpenOutcome(created=created, account=AccountView.of(self._account))

    async def _apply_pending(self) -> None:
        assert self._input is not None
        batch: list[Pending] = self._inbox.take(self._input.max_batch)
        decisions = None
        try:
            decisions = await self._persist([pending.command for pending in batch])
        finally:
            for refusal in self._inbox.settle(batch, decisions):
                workflow.logger.warning("signal refused: %s", refusal)

    async def _persist(self, commands: list[Command]) -> list[Decision]:
        """Decide ``commands`` against the state and append their events in one activity call.

        Only after the append succeeds does the state move on; if the log holds something the
        state did not know (a version conflict, or command ids older than the state's memory),
        the commands are decided again against the corrected state."""
        assert self._account is not None
        conflicts = 0
        while True:
            decisions, after = decide_each(self._account, commands)
            events = [event for decision in decisions for event in decision.events]
            if not events:
                break
            try:
                result = await self._append(events, after)
            except (ActivityError, ApplicationError) as error:
                if not replies.is_version_conflict(error):
                    raise
                workflow.logger.warning("version conflict, reloading from the log: %s", error)
                conflicts += 1
                if conflicts > 1:  # something else keeps writing: back off, durably
                    self._run.slept()
                    await workflow.sleep(timedelta(seconds=min(2 ** conflicts, 60)))
                self._account = await self._load()
                continue
            if result.appended:
                break
            self._account = self._account.knowing(result.known_commands())
        self._account = after
        return decisions

    async def _append(self, events: list[Event], after: AccountState) -> AppendResult:
        assert self._account is not None
        request = AppendEvents.recording(self._account, events, after)
        summary = f"append v{request.expected_version + 1}..v{after.version}"
        result: AppendResult = await self._store(EventStore.append_events, request, summary)
        return result

    async def _load(self) -> AccountState:
        assert self._input is not None
        request = LoadAccount(account_id=self._input.account_id)
        state: AccountState = await self._store(EventStore.load_account, request,
                                                "load from the event log")
        return state

    async def _store(self, method: Any, request: Any, summary: str) -> Any:
        """Run an event-store activity: a local one when the input asks for it and fewer than
        ``CROWDED`` updates wait. Both counts replay the same, and so does the choice."""
        assert self._input is not None
        crowded = (self._inbox.updates_waiting >= CROWDED
                   and workflow.patched(CROWDED_UPDATES_USE_REGULAR_ACTIVITIES))
        local = self._input.local_activities and not crowded
        self._run.ran_activity(local=local)
        run = workflow.execute_local_activity_method if local else workflow.execute_activity_method
        return await run(method, request, start_to_close_timeout=STORE_TIMEOUT,
                         retry_policy=STORE_RETRY, summary=summary)
