"""How ``AccountClient`` talks to the account workflows: each call bounded by the timeout and
its failures translated to ``BillingError``s, and a workflow that is gone (terminated, or
finished after a close) started again from the event log on the way.

A revival is an update-with-start (or a signal-with-start) whose start input says ``revive``: the
run loads the log and never opens an account, so a command to an account that was never opened
is ``AccountNotFound`` and leaves no workflow running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from client.errors import AccountNotFound, Endpoint, RunEnded
from domain.commands import AddFunds, Charge, RefundCharge
from workflows.interface import (
    OPENED,
    WORKFLOW_TYPE,
    AccountWorkflowInput,
    CommandOutcome,
    OpenOutcome,
    workflow_id,
)

REVIVAL_ATTEMPTS = 5
"""How often a revival is sent again when it meets a run that is ending (``RunEnded``)."""
REVIVAL_BACKOFF = 0.05
"""Seconds before the second attempt; doubled for each later one (about 1.5 s in all)."""
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class AccountTransport:
    """The Temporal calls under ``AccountClient``: updates, signals, revival."""

    def __init__(self, client: Client, task_queue: str | None = None, *,
                 rpc_timeout: float | None = None) -> None:
        self.temporal = client
        self._task_queue = task_queue
        self._timeout = rpc_timeout
        self._endpoint = Endpoint(client.service_client.config.target_host, client.namespace,
                                  task_queue, rpc_timeout)
        self.revived = 0
        """How many calls found the account's workflow gone and started it again from the log."""

    def handle(self, account_id: str) -> WorkflowHandle:
        """The account's workflow, for what this client does not wrap (history, terminate)."""
        return self.temporal.get_workflow_handle(workflow_id(account_id))

    async def revive(self, account_id: str) -> OpenOutcome:
        """Start the account's workflow again from the log if it is not running (terminated,
        or finished after a close), and wait until it has loaded. ``AccountNotFound`` if the log
        does not hold the account (the revived run then ends at once)."""
        if self._task_queue is None:
            raise ValueError("this AccountClient was made without a task queue: it cannot revive")
        outcome = await self._with_start(account_id, OPENED, [], OpenOutcome)
        if not outcome.account.currency:
            raise AccountNotFound(f"account {account_id} not found")
        self.revived += 1
        return outcome

    async def send_one(self, account_id: str, command: AddFunds | Charge | RefundCharge, *,
                       wait: bool = True) -> CommandOutcome | None:
        """Send ``command`` alone, as the ``add_funds``, ``charge`` or ``refund`` update that
        answers with its outcome, or (``wait=False``) as the signal of that name."""
        payload = command.model_dump(mode="json", exclude={"kind", "facts"})
        if not wait:
            await self._signal(account_id, command.kind, payload, command.command_id)
            return None
        return await self._update(account_id, command.kind, payload, CommandOutcome, command.command_id)

    async def _update(self, account_id: str, name: str, arg: Any, result_type: type[M],
                      command_id: str | None = None) -> M:
        """The update ``name``; if the account's workflow is gone (terminated, or finished after
        a close), update-with-start revives it from the log first."""
        try:
            return await self._call(account_id, self.handle(account_id).execute_update(
                name, arg, result_type=result_type, rpc_timeout=self._rpc_timeout), command_id)
        except AccountNotFound:
            if self._task_queue is None:
                raise
        self.revived += 1
        return await self._with_start(account_id, name, [arg], result_type, command_id)

    async def _with_start(self, account_id: str, name: str, args: list[Any], result_type: type[M],
                          command_id: str | None = None) -> M:
        """Update-with-start (USE_EXISTING), sent again if it met a run that was ending: such an
        update was not accepted, so sending it again cannot apply it twice."""
        for attempt in range(1, REVIVAL_ATTEMPTS + 1):
            try:
                return await self._call(account_id, self.temporal.execute_update_with_start_workflow(
                    name, args=args, start_workflow_operation=self._revival(account_id),
                    result_type=result_type, rpc_timeout=self._rpc_timeout), command_id)
            except RunEnded:
                if attempt == REVIVAL_ATTEMPTS:
                    raise
            # The run it met may still be completing: give the server a moment to close it.
            await asyncio.sleep(REVIVAL_BACKOFF * 2 ** attempt)
        raise AssertionError("unreachable")

    async def _signal(self, account_id: str, name: str, arg: Any, command_id: str | None = None) -> None:
        """The signal ``name``; when the workflow is gone (``_update``), revived first, then sent
        with signal-with-start."""
        try:
            await self._call(account_id, self.handle(account_id).signal(
                name, arg, rpc_timeout=self._rpc_timeout), command_id)
            return
        except AccountNotFound:
            if self._task_queue is None:
                raise
        # A signal has no answer: learn from a revival first whether the log holds the account
        # (AccountNotFound if not), then signal-with-start, which also covers a run that ended
        # again in between (a closed account's does once drained).
        await self.revive(account_id)
        await self._call(account_id, self.temporal.start_workflow(
            WORKFLOW_TYPE, revival_input(account_id), id=workflow_id(account_id),
            task_queue=self._task_queue, start_signal=name, start_signal_args=[arg],
            static_summary=f"Account {account_id} (revived)", rpc_timeout=self._rpc_timeout),
            command_id)

    def _revival(self, account_id: str) -> WithStartWorkflowOperation[Any, Any]:
        assert self._task_queue is not None
        return WithStartWorkflowOperation(
            WORKFLOW_TYPE, revival_input(account_id), id=workflow_id(account_id),
            task_queue=self._task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Account {account_id} (revived)")

    async def _call(self, account_id: str, call: Awaitable[T], command_id: str | None = None) -> T:
        """Await one Temporal call within the timeout; its failures become BillingErrors."""
        try:
            return await asyncio.wait_for(call, self._timeout)
        except Exception as error:
            translated = self._endpoint.translate(error, account_id, command_id)
            if translated is error:
                raise
            raise translated from error

    @property
    def _rpc_timeout(self) -> timedelta | None:
        return None if self._timeout is None else timedelta(seconds=self._timeout)


def revival_input(account_id: str) -> AccountWorkflowInput:
    """The start input that revives an account's workflow from the log, never opening one."""
    return AccountWorkflowInput(account_id=account_id, revive=True)
