"""The account operations behind the CLI verbs, over one Temporal client.

Each method makes one kind of call (start, query, update or signal) with input the CLI has
already validated, and turns Temporal's failures into a ``CliError`` with its exit code: an
unknown account, a declined charge, a worker that does not answer, a server out of reach.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import AsyncIterator, Awaitable, Callable, TypeVar

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from config import Settings, connect_temporal
from domain.model import AddFunds, Charge, CloseAccount
from starter.errors import CliError, ExitCode
from starter.output import money
from workflows.messages import (
    COMMAND_REJECTED,
    INSUFFICIENT_FUNDS,
    INVALID_COMMAND,
    WORKFLOW_TYPE,
    AccountView,
    AccountWorkflowInput,
    CommandOutcome,
    OpenOutcome,
    workflow_id,
)

POLL_INTERVAL = 0.1
T = TypeVar("T")
_TIMED_OUT = (asyncio.TimeoutError, RPCTimeoutOrCancelledError)


class Accounts:
    """Open, inspect, fund, charge and close accounts; every call bounded by ``timeout`` seconds."""

    def __init__(self, client: Client, settings: Settings, timeout: float) -> None:
        self._client = client
        self._settings = settings
        self._timeout = timeout

    @classmethod
    async def connect(cls, settings: Settings, timeout: float) -> "Accounts":
        """Connect to Temporal, or fail with a message naming TEMPORAL_ADDRESS."""
        try:
            client = await asyncio.wait_for(connect_temporal(settings), timeout)
        except (RuntimeError, *_TIMED_OUT) as error:
            raise CliError(f"cannot reach Temporal at TEMPORAL_ADDRESS={settings.temporal_address}"
                           f" ({_connect_reason(error)})", ExitCode.UNAVAILABLE) from None
        return cls(client, settings, timeout)

    async def open(self, start: AccountWorkflowInput) -> OpenOutcome:
        """Start the account's workflow and wait until it has written ACCOUNT_CREATED."""
        account_id = start.account_id
        async with self._translated(account_id):
            try:
                handle = await self._client.start_workflow(
                    WORKFLOW_TYPE, start, id=workflow_id(account_id),
                    task_queue=self._settings.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL, rpc_timeout=self._rpc_timeout)
            except WorkflowAlreadyStartedError:
                raise CliError(f"account {account_id} already exists", ExitCode.EXISTS) from None
        outcome = await self._opened(handle, account_id)
        if not outcome.created:
            raise CliError(
                f"account {account_id} already exists: its event log holds {outcome.account.version}"
                " event(s); its workflow is running again", ExitCode.EXISTS,
                {"account": outcome.account.model_dump(mode="json")})
        return outcome

    async def _opened(self, handle: WorkflowHandle, account_id: str) -> OpenOutcome:
        try:
            async with self._translated(account_id):
                return await self._bounded(handle.execute_update("opened", result_type=OpenOutcome))
        except CliError as error:
            raise CliError(f"{error.message} Its workflow has started, and opens the account as "
                           "soon as a worker runs it.", error.code, error.details) from None

    async def state(self, account_id: str) -> AccountView:
        """The account as its workflow sees it (the ``state`` query)."""
        async with self._translated(account_id):
            return await self._handle(account_id).query(
                "state", result_type=AccountView, rpc_timeout=self._rpc_timeout)

    async def submit(self, account: AccountView, command: AddFunds | Charge, *,
                     wait: bool) -> CommandOutcome | None:
        """Send a credit or debit: an update answered with its outcome, or (``wait=False``) a
        signal that returns once Temporal has accepted it."""
        handle = self._handle(account.account_id)
        payload = command.model_dump(mode="json", exclude={"kind"})
        async with self._translated(account.account_id, command.command_id):
            try:
                if not wait:
                    await handle.signal(command.kind, payload, rpc_timeout=self._rpc_timeout)
                    return None
                return await self._bounded(
                    handle.execute_update(command.kind, payload, result_type=CommandOutcome))
            except WorkflowUpdateFailedError as error:
                raise _refusal(error, account, command) from None

    async def close(self, account_id: str, command: CloseAccount) -> None:
        """Signal ``close``; the workflow records it after every command received before it."""
        payload = command.model_dump(mode="json", exclude={"kind"})
        async with self._translated(account_id, command.command_id):
            await self._handle(account_id).signal("close", payload, rpc_timeout=self._rpc_timeout)

    async def wait_for(self, account_id: str, done: Callable[[AccountView], bool],
                       what: str) -> AccountView:
        """Poll the ``state`` query until ``done(view)``; fail after the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while not done(view := await self.state(account_id)):
            if loop.time() > deadline:
                raise CliError(f"account {account_id}: {what} did not happen within "
                               f"{self._timeout:g}s (now at version {view.version}, "
                               f"{view.pending_commands} pending)", ExitCode.UNAVAILABLE)
            await asyncio.sleep(POLL_INTERVAL)
        return view

    def web_ui(self, base_url: str) -> str:
        """The Temporal web UI's list of workflows in this namespace."""
        return f"{base_url.rstrip('/')}/namespaces/{self._settings.temporal_namespace}/workflows"

    @property
    def _rpc_timeout(self) -> timedelta:
        return timedelta(seconds=self._timeout)

    def _handle(self, account_id: str) -> WorkflowHandle:
        return self._client.get_workflow_handle(workflow_id(account_id))

    async def _bounded(self, call: Awaitable[T]) -> T:
        return await asyncio.wait_for(call, self._timeout)

    @asynccontextmanager
    async def _translated(self, account_id: str, command_id: str | None = None) -> AsyncIterator[None]:
        """Turn Temporal's RPC failures and timeouts into CliErrors."""
        try:
            yield
        except RPCError as error:
            raise self._rpc_failure(error, account_id) from None
        except _TIMED_OUT:
            raise self._no_answer(account_id, command_id) from None

    def _rpc_failure(self, error: RPCError, account_id: str) -> CliError:
        settings = self._settings
        if error.status == RPCStatusCode.NOT_FOUND and "namespace" in error.message.lower():
            return CliError(f"Temporal namespace {settings.temporal_namespace!r} not found "
                            "(TEMPORAL_NAMESPACE)", ExitCode.USAGE)
        if error.status == RPCStatusCode.NOT_FOUND:
            return CliError(f"account {account_id} not found", ExitCode.NOT_FOUND)
        if error.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            return self._no_answer(account_id, None)
        if error.status == RPCStatusCode.FAILED_PRECONDITION and "failed state" in error.message:
            return CliError(f"account {account_id}: its workflow keeps failing, so it cannot answer "
                            f"(see the worker's log): {error.message}", ExitCode.UNAVAILABLE)
        if error.status == RPCStatusCode.RESOURCE_EXHAUSTED:
            return CliError(f"account {account_id}: Temporal is too busy, try again ({error.message})",
                            ExitCode.UNAVAILABLE)
        if error.status == RPCStatusCode.UNAVAILABLE:
            return CliError(f"cannot reach Temporal at TEMPORAL_ADDRESS={settings.temporal_address}"
                            f" ({error.message})", ExitCode.UNAVAILABLE)
        return CliError(f"account {account_id}: Temporal refused the call: {error.message}")

    def _no_answer(self, account_id: str, command_id: str | None) -> CliError:
        message = (f"account {account_id} did not answer within {self._timeout:g}s: is a worker "
                   f"polling task queue {self._settings.task_queue!r} (BILLING_TASK_QUEUE), "
                   "with no errors in its log?")
        if command_id:
            message += (f" The command may still be applied: repeat it with --idempotency-key "
                        f"{command_id} to learn its outcome.")
        return CliError(message, ExitCode.UNAVAILABLE, {"command_id": command_id})


def _refusal(error: WorkflowUpdateFailedError, account: AccountView,
             command: AddFunds | Charge) -> CliError:
    """The CliError for an update the workflow refused: declined, rejected or invalid."""
    cause = error.cause
    if not isinstance(cause, ApplicationError):
        return CliError(f"account {account.account_id}: {command.kind} failed: {cause}")
    outcome = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
    details = {"outcome": outcome}
    if cause.type == INSUFFICIENT_FUNDS:
        currency, balance = account.currency, outcome.get("balance", account.balance)
        return CliError(f"charge of {money(command.amount, currency)} declined for account "
                        f"{account.account_id}: insufficient funds (balance {money(balance, currency)},"
                        f" overdraft limit {money(account.overdraft_limit, currency)})",
                        ExitCode.REFUSED, details)
    if cause.type == COMMAND_REJECTED:
        return CliError(f"{command.kind} rejected by account {account.account_id}: {cause.message}",
                        ExitCode.REFUSED, details)
    if cause.type == INVALID_COMMAND:
        return CliError(f"invalid {command.kind}: {cause.message}", ExitCode.USAGE)
    return CliError(f"account {account.account_id}: {command.kind} failed: {cause.message}")


def _connect_reason(error: BaseException) -> str:
    """The useful part of the SDK's connection error, e.g. ``Connection refused``."""
    if isinstance(error, _TIMED_OUT):
        return "timed out"
    found = re.search(r'message: "([^"]+)"', str(error))
    return found.group(1) if found else str(error)
