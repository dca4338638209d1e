"""The account as an event-sourced entity: commands, events, state, ``decide`` and ``evolve``.

This module is the one core. The workflow decides with it, the activities fold the log with
it, and replay and tests call the same two functions. It does no I/O and reads no clock.

- ``decide(state, command)`` returns the events a command produces: an empty list when the
  command id was seen before (a duplicate delivery), otherwise exactly one event.
- ``evolve(state, event)`` folds one event into the state; every event bumps the version.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from domain.money import MAX_AMOUNT, MoneyError, currency_exponent

MAX_BALANCE = 10**18
"""Balances stay within ±10^18 minor units, well inside Postgres bigint."""

RECENT_COMMANDS_KEPT = 2_000
"""How many recent command ids the state remembers for deduplication.

Older duplicates are caught by the UNIQUE(account_id, command_id) key in Postgres.
"""

AccountId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
CommandId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Description = Annotated[str, StringConstraints(max_length=500)]
Amount = Annotated[int, Field(strict=True, gt=0, le=MAX_AMOUNT)]


class _Message(BaseModel):
    """Base for commands: immutable, strict about types, and refusing unknown fields."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")


class OpenAccount(_Message):
    """Open an account in one currency, optionally allowed to go below zero by ``overdraft_limit``."""

    kind: Literal["open"] = "open"
    account_id: AccountId
    currency: str
    overdraft_limit: Annotated[int, Field(strict=True, ge=0, le=MAX_AMOUNT)] = 0

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, code: str) -> str:
        try:
            currency_exponent(code)
        except MoneyError as error:
            raise ValueError(str(error)) from None
        return code


class AddFunds(_Message):
    """Credit the account. ``command_id`` is the caller's idempotency key."""

    kind: Literal["add_funds"] = "add_funds"
    command_id: CommandId
    amount: Amount
    description: Description = ""


class Charge(_Message):
    """Debit the account, unless that would take it below ``-overdraft_limit``."""

    kind: Literal["charge"] = "charge"
    command_id: CommandId
    amount: Amount
    description: Description = ""


class CloseAccount(_Message):
    """Close the account; every later command is rejected."""

    kind: Literal["close"] = "close"
    command_id: CommandId
    reason: Description = ""


class RejectInput(_Message):
    """Input that failed validation; deciding it records why, so nothing is silently dropped.

    It carries no command id: a malformed command must not use up the caller's idempotency key,
    so a corrected retry under the same key is still applied."""

    kind: Literal["reject"] = "reject"
    command: str
    reason: str
    received: Any = None


Command = Annotated[
    Union[OpenAccount, AddFunds, Charge, CloseAccount, RejectInput], Field(discriminator="kind")
]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)


class AccountCreated(_Event):
    type: Literal["ACCOUNT_CREATED"] = "ACCOUNT_CREATED"
    command_id: str | None = None
    account_id: str
    currency: str
    overdraft_limit: int = 0


class FundsAdded(_Event):
    type: Literal["FUND_ADDED"] = "FUND_ADDED"
    command_id: str
    amount: int
    description: str = ""


class ChargeApplied(_Event):
    type: Literal["CHARGE_APPLIED"] = "CHARGE_APPLIED"
    command_id: str
    amount: int
    description: str = ""


class ChargeDeclined(_Event):
    type: Literal["CHARGE_DECLINED"] = "CHARGE_DECLINED"
    command_id: str
    amount: int
    description: str = ""
    reason: str
    balance: int


class CommandRejected(_Event):
    """A command that was not applied. ``command_id`` is kept only when it was well-formed,
    so a malformed command does not use up the caller's idempotency key."""

    type: Literal["COMMAND_REJECTED"] = "COMMAND_REJECTED"
    command_id: str | None = None
    command: str
    reason: str
    received: Any = None


class AccountClosed(_Event):
    type: Literal["ACCOUNT_CLOSED"] = "ACCOUNT_CLOSED"
    command_id: str | None = None
    reason: str = ""


Event = Annotated[
    Union[AccountCreated, FundsAdded, ChargeApplied, ChargeDeclined, CommandRejected, AccountClosed],
    Field(discriminator="type"),
]


class AccountStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class AccountState(BaseModel):
    """Everything needed to decide the next command; also the snapshot carried across
    continue-as-new. ``recent_commands`` maps recent command ids to the version that recorded them."""

    model_config = ConfigDict(frozen=True)

    account_id: str
    currency: str = ""
    overdraft_limit: int = 0
    balance: int = 0
    version: int = 0
    status: AccountStatus = AccountStatus.OPEN
    recent_commands: dict[str, int] = Field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.version > 0


def decide(state: AccountState, command: Command) -> list[Event]:
    """Return the events ``command`` produces against ``state``.

    ``[]`` means nothing happens: a command id seen before, or opening an account that exists.
    """
    if isinstance(command, RejectInput):
        return [CommandRejected(command=command.command, reason=command.reason,
                                received=command.received)]
    if isinstance(command, OpenAccount):
        if state.exists:
            return []
        return [AccountCreated(account_id=command.account_id, currency=command.currency,
                               overdraft_limit=command.overdraft_limit)]
    if command.command_id in state.recent_commands:
        return []
    if not state.exists:
        return [_rejected(command, "account does not exist")]
    if state.status is AccountStatus.CLOSED:
        return [_rejected(command, "account is closed")]
    if isinstance(command, AddFunds):
        if state.balance + command.amount > MAX_BALANCE:
            return [_rejected(command, f"balance would exceed the maximum of {MAX_BALANCE}")]
        return [FundsAdded(command_id=command.command_id, amount=command.amount,
                           description=command.description)]
    if isinstance(command, Charge):
        if state.balance - command.amount < -state.overdraft_limit:
            return [ChargeDeclined(
                command_id=command.command_id, amount=command.amount,
                description=command.description, balance=state.balance,
                reason=f"insufficient funds: balance {state.balance}, overdraft limit "
                       f"{state.overdraft_limit}, charge {command.amount}",
            )]
        return [ChargeApplied(command_id=command.command_id, amount=command.amount,
                              description=command.description)]
    return [AccountClosed(command_id=command.command_id, reason=command.reason)]


def evolve(state: AccountState, event: Event) -> AccountState:
    """Fold one event into the state. Pure: returns a new state."""
    version = state.version + 1
    changes: dict[str, Any] = {"version": version}
    if isinstance(event, AccountCreated):
        changes.update(currency=event.currency, overdraft_limit=event.overdraft_limit,
                       status=AccountStatus.OPEN)
    elif isinstance(event, FundsAdded):
        changes["balance"] = state.balance + event.amount
    elif isinstance(event, ChargeApplied):
        changes["balance"] = state.balance - event.amount
    elif isinstance(event, AccountClosed):
        changes["status"] = AccountStatus.CLOSED
    if event.command_id is not None:
        changes["recent_commands"] = _remember(state.recent_commands, event.command_id, version)
    return state.model_copy(update=changes)


def fold(state: AccountState, events: list[Event]) -> AccountState:
    """Apply ``evolve`` over a sequence of events."""
    for event in events:
        state = evolve(state, event)
    return state


def remember_commands(state: AccountState, recorded: dict[str, int]) -> AccountState:
    """Return ``state`` knowing that these command ids were recorded at these versions
    (learned from the log when they were older than the state's memory)."""
    recent = state.recent_commands
    for command_id, version in recorded.items():
        recent = _remember(recent, command_id, version)
    return state.model_copy(update={"recent_commands": recent})


def _rejected(command: AddFunds | Charge | CloseAccount, reason: str) -> CommandRejected:
    return CommandRejected(command_id=command.command_id, command=command.kind, reason=reason)


def _remember(recent: dict[str, int], command_id: str, version: int) -> dict[str, int]:
    kept = dict(recent)
    kept[command_id] = version
    while len(kept) > RECENT_COMMANDS_KEPT:
        del kept[next(iter(kept))]
    return kept
