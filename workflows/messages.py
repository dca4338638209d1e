"""The account workflow's public interface: names, inputs, outcomes and typed errors.

Signals and updates arrive as plain JSON. ``parse_command`` turns what arrived into a domain
command, or into a ``RejectInput`` that says why it was refused, so no input is ever lost and
no input can fail the workflow.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from domain.model import (
    AccountState,
    AccountStatus,
    AddFunds,
    Charge,
    CloseAccount,
    Command,
    OpenAccount,
    RejectInput,
)

WORKFLOW_TYPE = "AccountWorkflow"
ADD_FUNDS, CHARGE, CLOSE, POST_BATCH = "add_funds", "charge", "close", "post_batch"
MAX_BATCH_COMMANDS = 1_000
"""The most commands one ``post_batch`` message may carry."""
MAX_BATCH_BYTES = 1_000_000
"""The most one ``post_batch`` update may weigh as JSON. Temporal refuses payloads over 2 MB,
and an update's input is copied into its acceptance: 1,000 maximal commands (128-character ids,
500-character descriptions in 4-byte UTF-8) would weigh 2.6 MB."""

# ApplicationError types that callers can match on.
INVALID_COMMAND = "InvalidCommand"
INVALID_ACCOUNT = "InvalidAccount"
INSUFFICIENT_FUNDS = "InsufficientFunds"
COMMAND_REJECTED = "CommandRejected"

_COMMAND_MODELS: dict[str, type[BaseModel]] = {ADD_FUNDS: AddFunds, CHARGE: Charge, CLOSE: CloseAccount}
_PREVIEW_CHARS = 1_000
_BATCH_ITEM: TypeAdapter[AddFunds | Charge] = TypeAdapter(
    Annotated[Union[AddFunds, Charge], Field(discriminator="kind")]
)


def workflow_id(account_id: str) -> str:
    """The id of the workflow that owns ``account_id``."""
    return f"account-{account_id}"


class AccountWorkflowInput(BaseModel):
    """Start input. ``snapshot`` is set only by continue-as-new; ``history_budget`` caps the
    history length of one run (tests set it small to exercise continue-as-new)."""

    model_config = ConfigDict(extra="forbid")

    account_id: str
    currency: str = ""
    overdraft_limit: int = 0
    snapshot: AccountState | None = None
    history_budget: int = Field(default=10_000, ge=10)
    max_batch: int = Field(default=MAX_BATCH_COMMANDS, ge=1, le=2_000)
    local_activities: bool = True
    """Run the event-store activities as local activities: one workflow task per batch instead
    of a server round trip before and after the store call, and a small marker in the history
    instead of the whole batch. Measured in bench/ (BENCHMARKS.md)."""

    def open_command(self) -> OpenAccount:
        return OpenAccount.model_validate(
            {"account_id": self.account_id, "currency": self.currency,
             "overdraft_limit": self.overdraft_limit}
        )


class CommandOutcome(BaseModel):
    """What happened to one command. ``version`` is the event that recorded it and ``balance``
    the balance right after it.

    A ``duplicate`` (a command id seen before) changes nothing: ``version`` is the event that
    first recorded the id, ``balance`` today's balance, and ``original_status`` (with
    ``reason``) what the first command came to, so a caller that lost the first answer learns
    it. ``original_status`` is None only for an id older than the account's memory; the event
    at ``version`` in the log tells."""

    command_id: str | None
    status: Literal["applied", "declined", "rejected", "duplicate"]
    reason: str = ""
    balance: int
    version: int
    original_status: Literal["applied", "declined", "rejected"] | None = None


class AccountView(BaseModel):
    """The ``state`` query's answer."""

    account_id: str
    currency: str
    balance: int
    version: int
    status: AccountStatus
    overdraft_limit: int
    pending_commands: int = 0
    """Commands received but not yet stored; 0 means the log holds everything sent so far."""

    @classmethod
    def of(cls, state: AccountState, pending: int = 0) -> "AccountView":
        return cls(account_id=state.account_id, currency=state.currency, balance=state.balance,
                   version=state.version, status=state.status,
                   overdraft_limit=state.overdraft_limit, pending_commands=pending)


class BatchOutcome(BaseModel):
    """Answer of the ``post_batch`` update: one outcome per command, in the order sent.
    Declines and rejections are outcomes here, not errors, so one bad charge does not hide
    the others' results."""

    outcomes: list[CommandOutcome]


class OpenOutcome(BaseModel):
    """Answer of the ``opened`` update: whether this start created the account, or found it in
    the log (an account that already existed)."""

    created: bool
    account: AccountView


def parse_command(kind: str, args: Sequence[Any]) -> Command:
    """Validate a signal's or update's arguments as the command ``kind``.

    Returns the command, or a ``RejectInput`` naming every problem; never raises.
    """
    if len(args) != 1:
        return _reject(kind, f"expected exactly one JSON object argument, got {len(args)}", args)
    payload = args[0]
    if not isinstance(payload, dict):
        return _reject(kind, f"expected a JSON object, got {type(payload).__name__}", payload)
    model = _COMMAND_MODELS.get(kind)
    if model is None:
        return _reject(kind, f"unknown command {kind!r}", payload)
    try:
        return model.model_validate(payload)  # type: ignore[return-value]
    except ValidationError as error:
        return _reject(kind, describe_validation_error(error), payload)


def command_size(command: BaseModel) -> int:
    """A command's weight in a batch, as UTF-8 JSON bytes."""
    return len(command.model_dump_json().encode())


def batch_size(batch: Any) -> int:
    """A ``post_batch`` argument's weight as UTF-8 JSON bytes."""
    return len(json.dumps(batch, ensure_ascii=False, separators=(",", ":"), default=repr).encode())


def parse_batch(args: Sequence[Any]) -> list[Command]:
    """Validate a ``post_batch`` message: ``{"commands": [{"kind": "add_funds"|"charge", ...}]}``.

    Each well-formed item becomes its command and each malformed one its own ``RejectInput``;
    a malformed envelope becomes a single ``RejectInput``. Never raises.
    """
    if len(args) != 1:
        return [_reject(POST_BATCH, f"expected exactly one JSON object argument, got {len(args)}", args)]
    payload = args[0]
    items = payload.get("commands") if isinstance(payload, dict) else None
    if not isinstance(items, list) or set(payload) != {"commands"}:
        return [_reject(POST_BATCH, 'expected {"commands": [...]} and no other field', payload)]
    if not 1 <= len(items) <= MAX_BATCH_COMMANDS:
        return [_reject(POST_BATCH, f"a batch holds 1 to {MAX_BATCH_COMMANDS} commands, got {len(items)}",
                        f"{len(items)} commands")]
    return [_parse_batch_item(index, item) for index, item in enumerate(items)]


def _parse_batch_item(index: int, item: Any) -> Command:
    try:
        return _BATCH_ITEM.validate_python(item)
    except ValidationError as error:
        kind = item.get("kind") if isinstance(item, dict) else None
        return _reject(kind if kind in (ADD_FUNDS, CHARGE) else POST_BATCH,
                       f"commands[{index}]: {describe_validation_error(error)}", item)


def describe_validation_error(error: ValidationError) -> str:
    """``field: message`` per problem, without echoing the (possibly huge) input.

    Field names come from the sender, so they are escaped (a NUL cannot be stored in Postgres)
    and shortened, and so is the whole text."""
    text = "; ".join(
        f"{'.'.join(_printable(part) for part in problem['loc']) or 'input'}: {problem['msg']}"
        for problem in error.errors(include_url=False, include_input=False)
    )
    return _shorten(text, _PREVIEW_CHARS)


def _printable(part: object) -> str:
    text = str(part)
    if not text.isprintable():
        text = json.dumps(text)[1:-1]  # escapes control characters as \uXXXX
    return _shorten(text, 64)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _reject(kind: str, reason: str, received: Any) -> RejectInput:
    return RejectInput(command=kind, reason=reason, received=_preview(received))


def _preview(value: Any) -> str:
    return _shorten(json.dumps(value, default=repr, sort_keys=True), _PREVIEW_CHARS)
