"""The account workflow's answers to bad input and refused commands, as typed errors.

A bad start input fails the run with ``InvalidAccount``; a malformed update is refused with
``InvalidCommand``; a single command's update answers a decline, a rejection or a reused key
with ``InsufficientFunds``, ``CommandRejected``, ``AccountHasBalance`` (a close refused) or
``IdempotencyKeyReused``, its outcome in the error's details. Every one is a
non-retryable ``ApplicationError``: anything else would fail the workflow task again and again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from activities.contracts import VERSION_CONFLICT
from domain.account import HOLDS_BALANCE_PREFIX
from domain.commands import Command, RejectInput
from workflows.decoding import Undecodable, batch_size, describe_validation_error, parse_update
from workflows.inbox import Inbox
from workflows.interface import (
    ACCOUNT_HAS_BALANCE,
    COMMAND_REJECTED,
    IDEMPOTENCY_KEY_REUSED,
    INSUFFICIENT_FUNDS,
    INVALID_ACCOUNT,
    INVALID_COMMAND,
    MAX_BATCH_BYTES,
    POST_BATCH,
    AccountWorkflowInput,
    CommandOutcome,
    workflow_id,
)

CLOSE_ACCEPTS_NULL = "close-accepts-null"
"""Patch: a ``close`` whose one argument is null closes the account. Before it, it was recorded
as a malformed close (COMMAND_REJECTED), so histories from then must keep doing so."""


def parse_input(args: Sequence[Any]) -> AccountWorkflowInput:
    """The decoded start input, validated; ``InvalidAccount`` fails the run otherwise."""
    if len(args) != 1:
        raise _invalid_account(f"expected exactly one start argument, got {len(args)}")
    if isinstance(args[0], Undecodable):
        raise _invalid_account(f"expected a JSON object, got {args[0].reason}")
    try:
        parsed = AccountWorkflowInput.model_validate(args[0])
        if parsed.snapshot is None and not parsed.revive:
            parsed.open_command()
    except ValidationError as error:
        raise _invalid_account(describe_validation_error(error)) from None
    if workflow.info().workflow_id != workflow_id(parsed.account_id):
        raise _invalid_account(f"account {parsed.account_id!r} belongs to workflow id "
                               f"{workflow_id(parsed.account_id)!r}, not {workflow.info().workflow_id!r}")
    return parsed


def _invalid_account(reason: str) -> ApplicationError:
    return ApplicationError(f"invalid account: {reason}", type=INVALID_ACCOUNT, non_retryable=True)


def checked_update(name: str, args: Sequence[Any]) -> list[Command]:
    """The commands of the update ``name``, or the ``InvalidCommand`` error its caller gets."""
    if name == POST_BATCH and (size := batch_size(args)) > MAX_BATCH_BYTES:
        raise ApplicationError(f"a batch may weigh {MAX_BATCH_BYTES} bytes as JSON, got {size};"
                               " send fewer commands per batch", type=INVALID_COMMAND,
                               non_retryable=True)
    commands = parse_update(name, args)
    reasons = [c.reason for c in commands if isinstance(c, RejectInput)]
    if reasons:
        raise ApplicationError("; ".join(reasons[:10]), type=INVALID_COMMAND, non_retryable=True)
    return commands


def answer(outcome: CommandOutcome) -> CommandOutcome:
    """A single command's update answers a decline or a rejection with a typed error."""
    if outcome.status == "declined":
        raise ApplicationError(outcome.reason, outcome, type=INSUFFICIENT_FUNDS, non_retryable=True)
    if outcome.status == "rejected":
        kind = ACCOUNT_HAS_BALANCE if outcome.reason.startswith(HOLDS_BALANCE_PREFIX) else COMMAND_REJECTED
        raise ApplicationError(outcome.reason, outcome, type=kind, non_retryable=True)
    if outcome.status == "refused":
        raise ApplicationError(outcome.reason, outcome, type=IDEMPOTENCY_KEY_REUSED,
                               non_retryable=True)
    return outcome


def with_close_id(args: Sequence[Any], inbox: Inbox) -> Sequence[Any]:
    """A close without a command id gets one, so it is still recorded exactly once. It is
    made from the run id and a count, so a retried workflow task that decides its batch again
    gives it the same id."""
    if len(args) == 1 and args[0] is None and workflow.patched(CLOSE_ACCEPTS_NULL):
        args = []  # Go's SDK sends a signal's absent argument as null
    payload = args[0] if args else {}
    if len(args) <= 1 and isinstance(payload, dict) and "command_id" not in payload:
        inbox.closes_without_id += 1
        return [{**payload, "command_id": f"close-{workflow.info().run_id}-{inbox.closes_without_id}"}]
    return args


def update_id() -> str:
    info = workflow.current_update_info()
    assert info is not None  # called only from an update's handler or validator
    return info.id


def is_version_conflict(error: ActivityError | ApplicationError) -> bool:
    """A regular activity's failure arrives as an ActivityError around the ApplicationError it
    raised; a local activity's arrives as the ApplicationError itself."""
    cause = error.cause if isinstance(error, ActivityError) else error
    return isinstance(cause, ApplicationError) and cause.type == VERSION_CONFLICT
