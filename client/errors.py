"""What ``AccountClient`` raises: one ``BillingError`` subclass per thing a caller can act on.

``Endpoint.translate`` is the one place where Temporal's exceptions (RPC status codes, failed
updates, rejected queries, timeouts) become these errors, so no caller needs to know the SDK's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pydantic import ValidationError
from temporalio.client import (
    RPCTimeoutOrCancelledError,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.account import CLOSED_REASON, HOLDS_BALANCE_PREFIX, NO_ACCOUNT_REASON
from workflows.interface import (
    ACCOUNT_HAS_BALANCE,
    COMMAND_REJECTED,
    IDEMPOTENCY_KEY_REUSED,
    INSUFFICIENT_FUNDS,
    INVALID_COMMAND,
    CommandOutcome,
    OpenOutcome,
)

REFUSALS = (INSUFFICIENT_FUNDS, COMMAND_REJECTED, ACCOUNT_HAS_BALANCE, IDEMPOTENCY_KEY_REUSED)
"""The update error types that carry the command's outcome in their details."""


class BillingError(Exception):
    """Base of every error the client raises on purpose; the message is written for people."""


class InvalidCommand(BillingError):
    """The command is malformed; nothing was sent or recorded."""


class AccountNotFound(BillingError):
    """The event log holds no such account (the client tried reviving its workflow first)."""


class RunEnded(AccountNotFound):
    """The account's run ended while the call was in flight (a closed account's run ends once
    drained): nothing was accepted, and sending again revives it. The client retries this
    itself; a caller sees it only if the run keeps ending under it."""


class AccountNotRunning(BillingError):
    """The account's workflow has ended (``status``: TERMINATED, FAILED, ...); raised only when
    the caller asked for a running one."""

    def __init__(self, account_id: str, status: str) -> None:
        super().__init__(f"account {account_id}: its workflow is not running ({status})")
        self.status = status


class AccountExists(BillingError):
    """``open`` found the account already there. ``outcome`` is set when its workflow had to be
    started again from the event log (the account as the log has it)."""

    def __init__(self, message: str, outcome: OpenOutcome | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome


class CommandRefused(BillingError):
    """The account did not apply the command; ``outcome`` says where and why."""

    def __init__(self, outcome: CommandOutcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


class InsufficientFunds(CommandRefused):
    """A charge declined because it would pass the overdraft limit (``CHARGE_DECLINED``)."""


class CommandRejectedError(CommandRefused):
    """A command rejected by the account, e.g. because it is closed (``COMMAND_REJECTED``)."""


class AccountClosedError(CommandRejectedError):
    """The account is closed: every command after the close is rejected (and recorded so)."""


class AccountHasBalance(CommandRejectedError):
    """A close refused because the account holds money or owes it (``outcome.balance``); close
    with ``payout=True`` and a reason to settle it first."""


class IdempotencyKeyReused(CommandRefused):
    """The key was used before for another command (the message says what differs); nothing was
    recorded. ``outcome.version`` is the event that recorded the first one."""


class NamespaceNotFound(BillingError):
    """The client's Temporal namespace does not exist: a configuration error."""


class TemporalUnavailable(BillingError):
    """Temporal, or a worker behind it, did not answer: nothing is known about the call's effect.
    ``command_id`` names a command that may still be applied; repeating it is safe."""

    def __init__(self, message: str, *, command_id: str | None = None) -> None:
        super().__init__(message)
        self.command_id = command_id


class TemporalUnreachable(TemporalUnavailable):
    """The Temporal server at ``address`` cannot be reached at all."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot reach Temporal at {address} ({reason})")
        self.address, self.reason = address, reason


def refusal(outcome: CommandOutcome, account_id: str = "") -> BillingError | None:
    """The error a caller gets for ``outcome``: None when it was applied or a duplicate."""
    if outcome.status == "rejected":
        if outcome.reason == NO_ACCOUNT_REASON:
            return AccountNotFound(f"account {account_id} not found" if account_id else "account not found")
        if outcome.reason == CLOSED_REASON:
            return AccountClosedError(outcome)
        if outcome.reason.startswith(HOLDS_BALANCE_PREFIX):
            return AccountHasBalance(outcome)
    refused = {"declined": InsufficientFunds, "rejected": CommandRejectedError,
               "refused": IdempotencyKeyReused}.get(outcome.status)
    return refused(outcome) if refused else None


@dataclass(frozen=True)
class Endpoint:
    """Where a client's calls go, so that its errors can say so."""

    address: str
    namespace: str
    task_queue: str | None
    timeout: float | None

    def translate(self, error: Exception, account_id: str,
                  command_id: str | None = None) -> Exception:
        """``error`` as the ``BillingError`` a caller can act on; anything unknown unchanged."""
        if isinstance(error, (asyncio.TimeoutError, RPCTimeoutOrCancelledError)):
            return self.no_answer(account_id, command_id)
        if isinstance(error, RPCError):
            return self._rpc_failure(error, account_id, command_id)
        if isinstance(error, WorkflowUpdateFailedError):
            return _update_failure(error.cause, account_id)
        if isinstance(error, WorkflowAlreadyStartedError):
            return AccountExists(f"account {account_id} already exists")
        if isinstance(error, WorkflowQueryRejectedError):
            return AccountNotRunning(account_id, error.status.name if error.status else "CLOSED")
        if isinstance(error, WorkflowQueryFailedError):
            return BillingError(f"account {account_id}: the state query failed: {error.message}")
        return error

    def no_answer(self, account_id: str, command_id: str | None) -> TemporalUnavailable:
        within = f"within {self.timeout:g}s" if self.timeout is not None else "in time"
        worker = (f"a worker polling task queue {self.task_queue!r}" if self.task_queue
                  else "a worker running")
        return TemporalUnavailable(f"account {account_id} did not answer {within}: is {worker}, "
                                   "with no errors in its log?", command_id=command_id)

    def _rpc_failure(self, error: RPCError, account_id: str, command_id: str | None) -> Exception:
        status, message = error.status, error.message
        if status == RPCStatusCode.NOT_FOUND and "namespace" in message.lower():
            return NamespaceNotFound(f"Temporal namespace {self.namespace!r} not found")
        if status == RPCStatusCode.NOT_FOUND and "closing workflow" in message:
            return RunEnded(f"account {account_id}: its run ended during the call ({message})")
        if status == RPCStatusCode.NOT_FOUND:
            return AccountNotFound(f"account {account_id} not found")
        if status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            return self.no_answer(account_id, command_id)
        if status == RPCStatusCode.UNAVAILABLE:
            return TemporalUnreachable(self.address, message)
        if status == RPCStatusCode.FAILED_PRECONDITION and "failed state" in message:
            return TemporalUnavailable(f"account {account_id}: its workflow keeps failing, so it "
                                       f"cannot answer (see the worker's log): {message}",
                                       command_id=command_id)
        if status == RPCStatusCode.RESOURCE_EXHAUSTED:
            return TemporalUnavailable(f"account {account_id}: Temporal is too busy, try again "
                                       f"({message})", command_id=command_id)
        return BillingError(f"account {account_id}: Temporal refused the call: {message}")


def _update_failure(cause: BaseException, account_id: str) -> BillingError:
    """A failed update: invalid input, or a decline or rejection carrying its outcome."""
    if isinstance(cause, ApplicationError):
        if cause.type == INVALID_COMMAND:
            return InvalidCommand(cause.message)
        if cause.type in REFUSALS and cause.details:
            try:
                refused = refusal(CommandOutcome.model_validate(cause.details[0]), account_id)
            except ValidationError:
                refused = None
            if refused is not None:
                return refused
    return BillingError(f"account {account_id}: the update failed: {cause}")
