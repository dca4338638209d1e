"""``AccountClient``: a typed async client for services that operate on accounts.

Calls are validated locally with the domain's own models, so a malformed command is refused
before it is sent. Concurrent calls to the same account are coalesced into one ``post_batch``
update (or signal), like TigerBeetle's clients: while a batch is in flight the next one fills,
so batches grow with load and an idle account still answers at once. Each caller gets its own
outcome, or its own typed exception.

    client = AccountClient(await connect_temporal(settings), settings.task_queue)
    await client.open("acme", "USD")
    outcome = await client.charge("acme", 1250, command_id="invoice-42")
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.model import AddFunds, Charge
from workflows.messages import (
    INVALID_COMMAND,
    MAX_BATCH_COMMANDS,
    POST_BATCH,
    WORKFLOW_TYPE,
    AccountView,
    AccountWorkflowInput,
    BatchOutcome,
    CommandOutcome,
    OpenOutcome,
    describe_validation_error,
    workflow_id,
)


class BillingError(Exception):
    """Base of every error this client raises on purpose."""


class InvalidCommand(BillingError):
    """The command is malformed; nothing was sent or recorded."""


class AccountNotFound(BillingError):
    """No workflow runs for this account."""


class AccountExists(BillingError):
    """``open`` found the account already there (running, or in the event log)."""


class CommandRefused(BillingError):
    """The account recorded the command but did not apply it."""

    def __init__(self, outcome: CommandOutcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


class InsufficientFunds(CommandRefused):
    """A charge declined because it would pass the overdraft limit (``CHARGE_DECLINED``)."""


class CommandRejected(CommandRefused):
    """A command rejected by the account, e.g. because it is closed (``COMMAND_REJECTED``)."""


@dataclass
class _Queued:
    command: AddFunds | Charge
    future: asyncio.Future
    wait: bool  # the caller wants the outcome, not just delivery


@dataclass
class _Queue:
    """Commands waiting for one account, and how many batches are in flight for it."""

    waiting: list[_Queued] = field(default_factory=list)
    in_flight: int = 0


class AccountClient:
    """Open, fund, charge, close and inspect accounts. One instance per process is plenty."""

    def __init__(self, client: Client, task_queue: str, *, max_in_flight: int = 2,
                 max_batch: int = MAX_BATCH_COMMANDS) -> None:
        self._client = client
        self._task_queue = task_queue
        self._max_in_flight = max_in_flight  # Temporal allows 10 in-flight updates per workflow
        self._max_batch = max_batch
        self._queues: dict[str, _Queue] = {}

    def handle(self, account_id: str) -> WorkflowHandle:
        return self._client.get_workflow_handle(workflow_id(account_id))

    async def open(self, account_id: str, currency: str, overdraft_limit: int = 0,
                   **options: Any) -> OpenOutcome:
        """Start the account's workflow and wait until it is open. Raises ``AccountExists``."""
        start = AccountWorkflowInput(account_id=account_id, currency=currency,
                                     overdraft_limit=overdraft_limit, **options)
        try:
            start.open_command()
        except ValidationError as error:
            raise InvalidCommand(describe_validation_error(error)) from None
        try:
            handle = await self._client.start_workflow(
                WORKFLOW_TYPE, start, id=workflow_id(account_id), task_queue=self._task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            raise AccountExists(f"account {account_id} already exists") from None
        outcome = await handle.execute_update("opened", result_type=OpenOutcome)
        if not outcome.created:
            raise AccountExists(f"account {account_id} already exists (its workflow was restarted "
                                f"from the event log at version {outcome.account.version})")
        return outcome

    async def state(self, account_id: str) -> AccountView:
        return await self._call(account_id, self.handle(account_id).query("state", result_type=AccountView))

    async def add_funds(self, account_id: str, amount: int, *, command_id: str | None = None,
                        description: str = "", wait: bool = True) -> CommandOutcome | None:
        """Credit ``amount`` minor units. With ``wait=False``, return once the account has
        received the command, without its outcome."""
        command = _command(AddFunds, command_id, amount, description)
        return await self.submit(account_id, command, wait=wait)

    async def charge(self, account_id: str, amount: int, *, command_id: str | None = None,
                     description: str = "", wait: bool = True) -> CommandOutcome | None:
        """Debit ``amount`` minor units; raises ``InsufficientFunds`` when declined."""
        command = _command(Charge, command_id, amount, description)
        return await self.submit(account_id, command, wait=wait)

    async def close(self, account_id: str, *, command_id: str | None = None, reason: str = "") -> None:
        payload = {"command_id": command_id or str(uuid.uuid4()), "reason": reason}
        await self._call(account_id, self.handle(account_id).signal("close", payload))

    async def submit(self, account_id: str, command: AddFunds | Charge, *,
                     wait: bool = True) -> CommandOutcome | None:
        """Queue ``command`` for ``account_id``; it leaves with the account's next batch."""
        future = asyncio.get_running_loop().create_future()
        queue = self._queues.setdefault(account_id, _Queue())
        queue.waiting.append(_Queued(command, future, wait))
        self._pump(account_id, queue)
        return await future

    def _pump(self, account_id: str, queue: _Queue) -> None:
        """Send the next batch unless the account already has enough in flight; the batch
        that finishes sends the rest, so commands never wait for a timer."""
        if queue.in_flight >= self._max_in_flight or not queue.waiting:
            return
        batch = queue.waiting[: self._max_batch]
        del queue.waiting[: len(batch)]
        queue.in_flight += 1
        task = asyncio.create_task(self._send(account_id, batch))
        task.add_done_callback(lambda _: self._batch_done(account_id, queue))

    def _batch_done(self, account_id: str, queue: _Queue) -> None:
        queue.in_flight -= 1
        self._pump(account_id, queue)
        if queue.in_flight == 0 and not queue.waiting:
            self._queues.pop(account_id, None)

    async def _send(self, account_id: str, batch: list[_Queued]) -> None:
        """One ``post_batch`` message: an update when anyone waits for outcomes, else a signal."""
        body = {"commands": [queued.command.model_dump() for queued in batch]}
        handle = self.handle(account_id)
        try:
            if any(queued.wait for queued in batch):
                result = await self._call(account_id, handle.execute_update(
                    POST_BATCH, body, result_type=BatchOutcome))
                outcomes = result.outcomes
            else:
                await self._call(account_id, handle.signal(POST_BATCH, body))
                outcomes = [None] * len(batch)
        except Exception as error:  # every caller in this batch learns why it failed
            for queued in batch:
                if not queued.future.done():
                    queued.future.set_exception(error)
            return
        for queued, outcome in zip(batch, outcomes):
            _settle(queued, outcome)

    async def _call(self, account_id: str, awaitable: Any) -> Any:
        """Await a Temporal call, turning its failures into this client's typed errors."""
        try:
            return await awaitable
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise AccountNotFound(f"account {account_id} not found") from None
            raise
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.type == INVALID_COMMAND:
                raise InvalidCommand(cause.message) from None
            raise


def _command(model: type[AddFunds] | type[Charge], command_id: str | None, amount: int,
             description: str) -> AddFunds | Charge:
    try:
        return model(command_id=command_id or str(uuid.uuid4()), amount=amount, description=description)
    except ValidationError as error:
        raise InvalidCommand(describe_validation_error(error)) from None


def _settle(queued: _Queued, outcome: CommandOutcome | None) -> None:
    future = queued.future
    if future.done():
        return
    if outcome is None or not queued.wait:
        future.set_result(None)
    elif outcome.status == "declined":
        future.set_exception(InsufficientFunds(outcome))
    elif outcome.status == "rejected":
        future.set_exception(CommandRejected(outcome))
    else:
        future.set_result(outcome)
