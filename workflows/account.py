"""``AccountWorkflow``: one long-running workflow per account, id ``account-<account_id>``.

The story of a run: load the account from its event log (or take the snapshot handed over by
continue-as-new), open it if the log is empty, then loop: take every command waiting in the
inbox, decide each with the pure core, persist the resulting events in one activity call, and
answer the updates that were waiting for them.

Signal and update handlers only validate and enqueue; the main loop is the single writer of
the state, so commands are applied strictly in the order they arrived.

The workflow, its signal handler and its command updates are dynamic: the SDK hands them the
raw payloads (``Sequence[RawValue]``), and ``decode_args`` decodes them here with the workflow's
payload converter. A named handler would have the SDK decode first, and a payload that does not
decode would be dropped (a signal), refused with an untyped error (an update), or fail the
workflow task forever (the start). Here it is refused like any other malformed input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from itertools import count
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.event_store import (
        VERSION_CONFLICT,
        AppendEvents,
        AppendResult,
        EventStore,
        LoadAccount,
        NewEvent,
        event_id,
    )
    from domain.model import (
        AccountState,
        Command,
        CommandRejected,
        ChargeDeclined,
        Decision,
        RejectInput,
        decide_batch,
        remember_commands,
    )
    from workflows.messages import (
        CLOSE,
        COMMAND_REJECTED,
        INSUFFICIENT_FUNDS,
        INVALID_ACCOUNT,
        INVALID_COMMAND,
        MAX_BATCH_BYTES,
        OPENED,
        POST_BATCH,
        SIGNALS,
        WORKFLOW_TYPE,
        AccountView,
        AccountWorkflowInput,
        BatchOutcome,
        CommandOutcome,
        OpenOutcome,
        Undecodable,
        batch_size,
        decode_args,
        describe_validation_error,
        parse_signal,
        parse_update,
        workflow_id,
    )

# Unlimited attempts: a Postgres outage delays commands, it never loses them. Only a version
# conflict is final, and the workflow answers it by reloading from the log.
STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=[VERSION_CONFLICT],
)
STORE_TIMEOUT = timedelta(seconds=30)
UPDATES_PER_RUN = 1_500
"""Temporal accepts at most 2,000 updates per run; continue as new well before that."""
CROWDED = 3
"""Update handlers waiting at once from which the store is called as a regular activity.

Temporal admits at most 10 updates in flight per workflow, and server 1.32 answers the next one
by dropping the workflow's cached state: every in-flight update is aborted, and the speculative
workflow task an update starts is lost with it. A local activity keeps the updates in flight for
the whole task and commits before the task does, so a lost task has written and its retry meets
a version conflict: with two workers the cycle could stall an account for minutes. A regular
activity ends the task at once: the updates are accepted in the history, and the activity's
completion starts a normal, persisted task. ``AccountClient`` (one batch in flight per account)
stays below this."""
CROWDED_UPDATES_USE_REGULAR_ACTIVITIES = "crowded-updates-use-regular-activities"
"""Patch: histories from before it ran every store call as a local activity."""
HISTORY_BYTES_PER_RUN = 2 * 1024 * 1024
"""Payload bytes received per run (start, signals, updates) before continuing as new. A run's
history holds them at most about twice (a regular activity repeats its batch), so this stays
near the 4 MiB at which the server suggests continuing as new, far below its 50 MiB limit."""
WORKFLOW_TASK_EVENTS = 3
"""Scheduled, started, completed: counted for every input and activity result, as if each had
needed its own workflow task, so that the count is an upper bound in the usual case."""
COUNT_RUN_LENGTH = "count-run-length"
"""Patch: whether a run is long is counted by the workflow (``_RunLength``) instead of read from
``workflow.info()``. Histories from before decide as they did, from the history length and the
server's suggestion."""
RECORD_UNREADABLE_SIGNALS = "record-unreadable-signals"
"""Patch: signals that do not decode, or have no handler, are recorded as rejected. Before it,
the SDK dropped the first and buffered the second, so histories from then must not record them."""


@dataclass
class _Pending:
    command: Command
    ticket: int | None = None  # set when an update waits for the outcome


@dataclass
class _RunLength:
    """What this run has added to its history, counted from what the workflow itself handled.

    ``workflow.info()``'s history length and continue-as-new suggestion are those of the
    workflow task whose activation reads them, and the activation that delivers a local
    activity's result is not the same live and on replay: live, a result can arrive in a later
    task than the one that recorded its marker (or a task can complete while the activity runs);
    a replay resolves it from the marker, in the task that scheduled it. Read right after an
    append, the two disagreed whenever the budget fell between them, and the replay did not
    continue as new where the run had. This count is the same in every replay.
    """

    events: int = 0
    payload_bytes: int = 0

    def add(self, events: int, args: Sequence[RawValue] = ()) -> None:
        self.events += events
        self.payload_bytes += sum(arg.payload.ByteSize() for arg in args)


# Dynamic so that run() receives its input undecoded; a start of any other type that reaches
# this task queue fails its workflow task, as it would with no workflow registered for it.
@workflow.defn(dynamic=True)
class AccountWorkflow:
    def __init__(self) -> None:
        self._state: AccountState | None = None
        self._opened: OpenOutcome | None = None
        self._inbox: list[_Pending] = []
        self._outcomes: dict[int, CommandOutcome] = {}
        self._tickets = count(1)
        self._input: AccountWorkflowInput | None = None
        self._updates_accepted = 0
        self._closes_received = 0
        self._writing = 0  # commands taken from the inbox whose events are not yet stored
        self._validated: dict[str, list[Command]] = {}  # update id -> its commands, until handled
        self._updates_waiting = 0  # update handlers waiting for their outcome
        self._length = _RunLength()
        self._counts_length = False  # set in run(); stays False for a run from before the patch

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> None:
        if workflow.info().workflow_type != WORKFLOW_TYPE:
            raise RuntimeError(f"workflow type {workflow.info().workflow_type!r} is not registered"
                               f" on this worker; it runs {WORKFLOW_TYPE!r}")
        self._counts_length = workflow.patched(COUNT_RUN_LENGTH)
        self._length.add(1 + WORKFLOW_TASK_EVENTS, args)
        self._input = _parse_input(decode_args(args, workflow.payload_converter()))
        if self._input.snapshot is not None:
            self._state = self._input.snapshot
            self._opened = OpenOutcome(created=False, account=AccountView.of(self._state))
        else:
            await self._open()
        while True:
            await workflow.wait_condition(lambda: bool(self._inbox))
            await self._apply_pending()
            # Whether the run is long is asked only here, right after an append, and answered
            # from the run's own count (see _RunLength): asked from a wake-up condition, or
            # answered from the task that happens to deliver the append's result, it could
            # differ on replay, and the replay would not continue as new where the run had.
            if self._run_is_long() and not self._inbox:
                # Continue as new only once every update has had its answer; new commands that
                # arrive meanwhile go round the loop first, so nothing is left behind.
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() or bool(self._inbox))
                if not self._inbox:
                    workflow.continue_as_new(self._input.model_copy(update={"snapshot": self._state}))

    # --- signals: validate, enqueue, never raise -------------------------------------------

    @workflow.signal(dynamic=True)
    def receive(self, name: str, args: Sequence[RawValue]) -> None:
        """Every signal: ``add_funds`` and ``charge`` (``{"command_id", "amount",
        "description"?}``), ``close`` (optional ``{"command_id"?, "reason"?}``) and
        ``post_batch`` (``{"commands": [{"kind": "charge", ...}, ...]}``). Any other name, and a
        payload that does not decode, is recorded as a rejection."""
        self._length.add(1 + WORKFLOW_TASK_EVENTS, args)
        values = decode_args(args, workflow.payload_converter())
        unreadable = name not in SIGNALS or any(isinstance(v, Undecodable) for v in values)
        if unreadable and not workflow.patched(RECORD_UNREADABLE_SIGNALS):
            workflow.logger.warning("signal %r dropped, as when this history was made", name)
            return
        if name == CLOSE:
            values = self._with_close_id(values)
        self._inbox.extend(_Pending(command) for command in parse_signal(name, values))

    # --- updates: the same commands, answered with their outcome ---------------------------

    @workflow.update(dynamic=True)
    async def submit(self, name: str, args: Sequence[RawValue]) -> CommandOutcome | BatchOutcome:
        """``add_funds`` and ``charge`` answer a ``CommandOutcome``, ``post_batch`` a
        ``BatchOutcome``; any other name, and malformed input, an ``InvalidCommand`` error."""
        self._updates_accepted += 1
        self._length.add(2 + WORKFLOW_TASK_EVENTS, args)  # accepted, completed
        commands = self._validated.pop(workflow.current_update_info().id, None)
        if commands is None:  # the validator did not check it: a replay, or a run's first task
            commands = _checked_update(name, decode_args(args, workflow.payload_converter()))
        tickets = []
        for command in commands:
            tickets.append(next(self._tickets))
            self._inbox.append(_Pending(command, tickets[-1]))
        self._updates_waiting += 1
        try:
            await workflow.wait_condition(lambda: all(ticket in self._outcomes for ticket in tickets))
        finally:
            self._updates_waiting -= 1
        outcomes = [self._outcomes.pop(ticket) for ticket in tickets]
        return BatchOutcome(outcomes=outcomes) if name == POST_BATCH else _answer(outcomes[0])

    @submit.validator
    def _validate_submit(self, name: str, args: Sequence[RawValue]) -> None:
        if not self._may_reject():
            return
        commands = _checked_update(name, decode_args(args, workflow.payload_converter()))
        # The handler runs right after, in the same task, and takes these instead of decoding and
        # parsing the payload again. It checks them itself when this did not run (a replay), to
        # the same commands: this memo never changes what the workflow does.
        self._validated[workflow.current_update_info().id] = commands

    def _may_reject(self) -> bool:
        """Whether a validator may refuse an update now: not before the run has begun.

        An update that reaches a run whose first workflow task the server is still holding back
        (continued as new less than a second after the previous run started) comes in a
        speculative task. If it is refused there, server 1.32 marks the run sticky with no task
        completed (its next task cannot be put on the sticky queue and times out after 10 s)
        and SDK core 1.35 keeps the cached run as if that task's events were real: it skips the
        signals that take their event ids (lost commands) or fails the task as nondeterministic.
        So in the first task the update is accepted and its handler fails it, with the same
        error; validators are not run on replay, so this choice never has to be repeated."""
        return self._input is not None

    @workflow.update(name=OPENED)
    async def opened(self) -> OpenOutcome:
        """Wait until the account is loaded or created; say which."""
        self._length.add(2 + WORKFLOW_TASK_EVENTS)  # accepted, completed
        await workflow.wait_condition(lambda: self._opened is not None)
        assert self._opened is not None
        return self._opened

    @workflow.query(name="state")
    def state(self) -> AccountView:
        if self._state is None:
            assert self._input is not None
            return AccountView(account_id=self._input.account_id, currency=self._input.currency,
                               balance=0, version=0, status="open",
                               overdraft_limit=self._input.overdraft_limit,
                               pending_commands=self._pending())
        return AccountView.of(self._state, pending=self._pending())

    def _pending(self) -> int:
        """Commands received but not yet in the log: zero means the log has caught up."""
        return len(self._inbox) + self._writing

    # --- the loop's work ------------------------------------------------------------------

    async def _open(self) -> None:
        assert self._input is not None
        state = await self._load()
        created = not state.exists
        if created:
            self._state = state
            await self._persist([_Pending(self._input.open_command())])
        else:
            self._state = state
        assert self._state is not None
        self._opened = OpenOutcome(created=created, account=AccountView.of(self._state))

    async def _apply_pending(self) -> None:
        assert self._input is not None
        batch = self._inbox[: self._input.max_batch]
        del self._inbox[: len(batch)]
        self._writing = len(batch)
        try:
            await self._persist(batch)
        finally:
            self._writing = 0

    async def _persist(self, batch: list[_Pending]) -> None:
        """Decide ``batch`` against the state and append its events in one activity call.

        Only after the append succeeds does the workflow's state move on; if the log holds
        something the state did not know (a version conflict, or command ids older than the
        state's memory), the batch is decided again against the corrected state.
        """
        assert self._state is not None and self._input is not None
        commands = [pending.command for pending in batch]
        conflicts = 0
        while True:
            decisions, after = decide_batch(self._state, commands)
            events = [event for decision in decisions for event in decision.events]
            new_events = [NewEvent.model_construct(event_id=event_id(after.account_id, version, event),
                                                   event=event)
                          for version, event in enumerate(events, start=self._state.version + 1)]
            if not new_events:
                break
            try:
                result = await self._append(new_events, after)
            except (ActivityError, ApplicationError) as error:
                if not _is_version_conflict(error):
                    raise
                workflow.logger.warning("version conflict, reloading from the log: %s", error)
                conflicts += 1
                if conflicts > 1:  # something else keeps writing: back off, durably
                    self._length.add(2 + WORKFLOW_TASK_EVENTS)  # timer started, fired
                    await workflow.sleep(timedelta(seconds=min(2 ** conflicts, 60)))
                self._state = await self._load()
                continue
            if result.appended:
                break
            self._state = remember_commands(self._state, result.already_recorded)
        self._state = after
        for pending, decision in zip(batch, decisions):
            if pending.ticket is not None:
                self._outcomes[pending.ticket] = _outcome(pending.command, decision)

    async def _append(self, new_events: list[NewEvent], after: AccountState) -> AppendResult:
        assert self._state is not None
        request = AppendEvents(
            account_id=after.account_id, expected_version=self._state.version, events=new_events,
            balance=after.balance, status=after.status, currency=after.currency,
            overdraft_limit=after.overdraft_limit,
        )
        summary = f"append v{request.expected_version + 1}..v{after.version}"
        return await self._store(EventStore.append_events, request, summary)

    async def _load(self) -> AccountState:
        assert self._input is not None
        request = LoadAccount(account_id=self._input.account_id)
        return await self._store(EventStore.load_account, request, "load from the event log")

    async def _store(self, method: Any, request: Any, summary: str) -> Any:
        """Run an event-store activity, as a local activity when the input asks for it (no
        server round trip before it starts; its result is recorded as a history marker) and
        fewer than ``CROWDED`` updates wait. Both counts replay the same, and so does the choice."""
        assert self._input is not None
        crowded = (self._updates_waiting >= CROWDED
                   and workflow.patched(CROWDED_UPDATES_USE_REGULAR_ACTIVITIES))
        local = self._input.local_activities and not crowded
        # A marker; or scheduled, started, ended and the task that takes the result.
        self._length.add(1 if local else 3 + WORKFLOW_TASK_EVENTS)
        run = workflow.execute_local_activity_method if local else workflow.execute_activity_method
        return await run(method, request, start_to_close_timeout=STORE_TIMEOUT,
                         retry_policy=STORE_RETRY, summary=summary)

    def _with_close_id(self, args: Sequence[Any]) -> Sequence[Any]:
        """A close without a command id gets one, so it is still recorded exactly once. It is
        made from the run id and a count, so a retried workflow task that decides its batch
        again gives it the same id."""
        payload = args[0] if args else {}
        if len(args) <= 1 and isinstance(payload, dict) and "command_id" not in payload:
            self._closes_received += 1
            command_id = f"close-{workflow.info().run_id}-{self._closes_received}"
            return [{**payload, "command_id": command_id}]
        return args

    def _run_is_long(self) -> bool:
        assert self._input is not None
        if self._counts_length:
            return (self._length.events >= self._input.history_budget
                    or self._length.payload_bytes >= HISTORY_BYTES_PER_RUN
                    or self._updates_accepted >= UPDATES_PER_RUN)
        info = workflow.info()  # a run from before COUNT_RUN_LENGTH decides as it did then
        return (info.is_continue_as_new_suggested()
                or info.get_current_history_length() >= self._input.history_budget
                or self._updates_accepted >= UPDATES_PER_RUN)


def _parse_input(args: Sequence[Any]) -> AccountWorkflowInput:
    """Validate the decoded start input; a bad one fails the run with a clear, non-retryable
    error (anything else would fail the workflow task again and again: a stuck workflow)."""
    if len(args) != 1:
        raise _invalid_account(f"expected exactly one start argument, got {len(args)}")
    if isinstance(args[0], Undecodable):
        raise _invalid_account(f"expected a JSON object, got {args[0].reason}")
    try:
        parsed = AccountWorkflowInput.model_validate(args[0])
        if parsed.snapshot is None:
            parsed.open_command()
    except ValidationError as error:
        raise _invalid_account(describe_validation_error(error)) from None
    if workflow.info().workflow_id != workflow_id(parsed.account_id):
        raise _invalid_account(f"account {parsed.account_id!r} belongs to workflow id "
                               f"{workflow_id(parsed.account_id)!r}, not {workflow.info().workflow_id!r}")
    return parsed


def _invalid_account(reason: str) -> ApplicationError:
    return ApplicationError(f"invalid account: {reason}", type=INVALID_ACCOUNT, non_retryable=True)


def _checked_update(name: str, args: Sequence[Any]) -> list[Command]:
    """The commands of the update ``name``, or the InvalidCommand error its caller gets."""
    if name == POST_BATCH and (size := batch_size(args)) > MAX_BATCH_BYTES:
        raise ApplicationError(f"a batch may weigh {MAX_BATCH_BYTES} bytes as JSON, got {size};"
                               " send fewer commands per batch", type=INVALID_COMMAND,
                               non_retryable=True)
    commands = parse_update(name, args)
    reasons = [c.reason for c in commands if isinstance(c, RejectInput)]
    if reasons:
        raise ApplicationError("; ".join(reasons[:10]), type=INVALID_COMMAND, non_retryable=True)
    return commands


def _answer(outcome: CommandOutcome) -> CommandOutcome:
    """A single command's update answers a decline or a rejection with a typed error."""
    if outcome.status == "declined":
        raise ApplicationError(outcome.reason, outcome, type=INSUFFICIENT_FUNDS, non_retryable=True)
    if outcome.status == "rejected":
        raise ApplicationError(outcome.reason, outcome, type=COMMAND_REJECTED, non_retryable=True)
    return outcome


def _outcome(command: Command, decision: Decision) -> CommandOutcome:
    """Translate the core's decision into the answer an update caller receives."""
    command_id = getattr(command, "command_id", None)
    if not decision.events:
        prior = decision.prior
        original = "applied" if prior is None else None if prior.status == "unknown" else prior.status
        return CommandOutcome(
            command_id=command_id, status="duplicate", reason=prior.reason if prior else "",
            balance=decision.balance, version=decision.version, original_status=original)
    status, reason = "applied", ""
    if isinstance(decision.events[-1], ChargeDeclined):
        status, reason = "declined", decision.events[-1].reason
    elif isinstance(decision.events[-1], CommandRejected):
        status, reason = "rejected", decision.events[-1].reason
    return CommandOutcome(command_id=command_id, status=status, reason=reason,
                          balance=decision.balance, version=decision.version)


def _is_version_conflict(error: ActivityError | ApplicationError) -> bool:
    """A regular activity's failure arrives as an ActivityError around the ApplicationError it
    raised; a local activity's arrives as the ApplicationError itself."""
    cause = error.cause if isinstance(error, ActivityError) else error
    return isinstance(cause, ApplicationError) and cause.type == VERSION_CONFLICT
