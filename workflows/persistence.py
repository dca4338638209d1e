"""How the account workflow writes: decide a batch with the pure core, append its events in one
activity call, and move the state on only once they are stored. A mixin of ``AccountWorkflow``,
kept apart so that the workflow reads as the story of a run."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.contracts import VERSION_CONFLICT, AppendEvents, AppendResult, LoadAccount
    from activities.event_store import EventStore
    from domain.account import Decision, decide_each
    from domain.commands import Command, RefundCharge
    from domain.events import Event
    from domain.state import AccountState
    from telemetry import accounts as metrics
    from workflows import replies
    from workflows.inbox import Inbox, Pending
    from workflows.interface import AccountView, AccountWorkflowInput, OpenOutcome
    from workflows.run_length import RunLength
    from workflows.visibility import Visibility

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
CLOSE_ENDS_BATCH = "close-ends-batch"
"""Patch: a batch ends with its first close, so the final invoice comes right after the close
and before any later command, whatever arrived with it. Before it, they could interleave."""


class Persisting:
    """The writing half of ``AccountWorkflow``."""

    _close_ends_batch: bool  # CLOSE_ENDS_BATCH, asked at the start of the run

    _input: AccountWorkflowInput | None
    _account: AccountState | None
    _opened: OpenOutcome | None
    _inbox: Inbox
    _run: RunLength
    _visibility: Visibility

    async def _open(self) -> None:
        assert self._input is not None
        self._account = await self._load()
        created = not self._account.exists and not self._input.revive
        if self._input.revive:
            metrics.revived(self._account)
        if created:
            await self._persist([self._input.open_command(workflow.now())])
        self._opened = OpenOutcome(created=created, account=AccountView.of(self._account))

    async def _apply_pending(self) -> None:
        assert self._input is not None
        most = self._input.max_batch
        if self._close_ends_batch and (through_close := self._inbox.through_first_close()):
            most = min(most, through_close)
        batch: list[Pending] = self._inbox.take(most)
        decisions = None
        try:
            decisions = await self._persist_in_order([pending.command for pending in batch])
        finally:
            for refusal in self._inbox.settle(batch, decisions):
                workflow.logger.warning("signal refused: %s", refusal)

    async def _persist_in_order(self, commands: list[Command]) -> list[Decision]:
        """``_persist`` the commands, a refund on its own: it is decided with what the log says
        of its charge, looked up just before (``_with_facts``)."""
        decisions: list[Decision] = []
        segment: list[Command] = []
        for command in commands:
            if isinstance(command, RefundCharge):
                decisions += await self._persist(segment) if segment else []
                segment = []
                decisions += await self._persist([await self._with_facts(command)])
            else:
                segment.append(command)
        return decisions + (await self._persist(segment) if segment else [])

    if TYPE_CHECKING:  # Invoicing's; a stub here would shadow it (Persisting comes first in the MRO)
        async def _with_facts(self, refund: RefundCharge) -> RefundCharge: ...

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
        self._visibility.recorded(self._account.version + 1, events)
        self._account = after
        metrics.decided(commands, decisions)
        return decisions

    async def _append(self, events: list[Event], after: AccountState) -> AppendResult:
        assert self._account is not None
        request = AppendEvents.recording(self._account, events, after)
        first = request.expected_version + 1
        summary = f"append {len(events)} event{'s' if len(events) != 1 else ''}, v{first}–v{after.version}"
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
