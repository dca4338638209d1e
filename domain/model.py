"""The account as an event-sourced entity: commands, events, state, ``decide`` and ``evolve``.

This module is the one core. The workflow decides with it, the activities fold the log with
it, and replay and tests call the same two functions. It does no I/O and reads no clock.

- ``decide(state, command)`` returns the events a command produces: an empty list when the
  command id was seen before (a duplicate delivery), otherwise exactly one event.
- ``evolve(state, event)`` folds one event into the state; every event bumps the version.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from itertools import islice
from typing import Annotated, Any, Iterable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from domain.money import MAX_AMOUNT, MoneyError, currency_exponent

MAX_BALANCE = 10**18
"""Balances stay within ±10^18 minor units, well inside Postgres bigint."""

RECENT_COMMANDS_KEPT = 2_000
"""How many recent command ids the state remembers for deduplication.

Older duplicates are caught by the UNIQUE(account_id, command_id) key in Postgres.
"""

AccountId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
# Control characters are refused: Postgres cannot store NUL in text or jsonb, and an event that
# cannot be stored would block its account's workflow.
CommandId = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,128}$")]
Description = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]{0,500}$")]
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


class PriorOutcome(BaseModel):
    """What a remembered command came to, when that was not simply "applied": kept so a retry
    under the same id gets the same answer. ``unknown`` marks ids learned from the log's unique
    key, whose outcome the state never saw."""

    model_config = ConfigDict(frozen=True)

    status: Literal["declined", "rejected", "unknown"]
    reason: str = ""


class AccountState(BaseModel):
    """Everything needed to decide the next command; also the snapshot carried across
    continue-as-new. ``recent_commands`` maps recent command ids to the version that recorded them;
    ``recent_outcomes`` holds what those among them that were not simply applied came to."""

    model_config = ConfigDict(frozen=True)

    account_id: str
    currency: str = ""
    overdraft_limit: int = 0
    balance: int = 0
    version: int = 0
    status: AccountStatus = AccountStatus.OPEN
    recent_commands: dict[str, int] = Field(default_factory=dict)
    recent_outcomes: dict[str, PriorOutcome] = Field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return bool(self.currency)  # only ACCOUNT_CREATED sets it


@dataclass(frozen=True)
class Decision:
    """What one command came to: its events (none for a duplicate), and the account's balance
    and version right after it. For a duplicate, ``version`` is the event that first recorded it
    and ``prior`` what it came to then, unless it was simply applied."""

    events: list[Event]
    balance: int
    version: int
    prior: PriorOutcome | None = None


def decide(state: "AccountState | _Draft", command: Command) -> list[Event]:
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


def decide_batch(state: AccountState, commands: list[Command]) -> tuple[list[Decision], AccountState]:
    """Decide ``commands`` in order, each against the state left by the ones before it.

    Equivalent to calling ``decide`` and ``evolve`` in a loop, but the command memory is copied
    once per batch instead of once per event.
    """
    draft = _Draft.of(state)
    decisions = []
    for command in commands:
        events = decide(draft, command)
        for event in events:
            draft.apply(event)
        if events:
            decisions.append(Decision(events=events, balance=draft.balance, version=draft.version))
            continue
        command_id = getattr(command, "command_id", None)
        decisions.append(Decision(
            events=events, balance=draft.balance,
            version=draft.recent_commands.get(command_id, draft.version),
            prior=draft.recent_outcomes.get(command_id)))
    return decisions, draft.freeze()


def evolve(state: AccountState, event: Event) -> AccountState:
    """Fold one event into the state. Pure: returns a new state."""
    return fold(state, [event])


def fold(state: AccountState, events: Iterable[Event]) -> AccountState:
    """Fold a sequence of events into the state, in order."""
    draft = _Draft.of(state)
    for event in events:
        draft.apply(event)
    return draft.freeze()


def remember_commands(state: AccountState, recorded: dict[str, int]) -> AccountState:
    """Return ``state`` knowing that these command ids were recorded at these versions
    (learned from the log when they were older than the state's memory)."""
    draft = _Draft.of(state)
    for command_id, version in recorded.items():
        draft.remember(command_id, version)
        draft.recent_outcomes[command_id] = PriorOutcome(status="unknown")
    return draft.freeze()


@dataclass
class _Draft:
    """A private, mutable working copy of an ``AccountState``.

    Folding into a draft copies the command memory once, however many events follow; the draft
    never leaves this module, so ``decide``, ``evolve`` and ``fold`` stay pure to their callers.
    """

    account_id: str
    currency: str
    overdraft_limit: int
    balance: int
    version: int
    status: AccountStatus
    recent_commands: dict[str, int]
    recent_outcomes: dict[str, PriorOutcome]

    @classmethod
    def of(cls, state: AccountState) -> "_Draft":
        return cls(state.account_id, state.currency, state.overdraft_limit, state.balance,
                   state.version, state.status, dict(state.recent_commands),
                   dict(state.recent_outcomes))

    @property
    def exists(self) -> bool:
        return bool(self.currency)  # only ACCOUNT_CREATED sets it

    def apply(self, event: Event) -> None:
        """The one place that says what each event does to an account."""
        self.version += 1
        if isinstance(event, AccountCreated):
            self.currency, self.overdraft_limit = event.currency, event.overdraft_limit
            self.status = AccountStatus.OPEN
        elif isinstance(event, FundsAdded):
            self.balance += event.amount
        elif isinstance(event, ChargeApplied):
            self.balance -= event.amount
        elif isinstance(event, AccountClosed):
            self.status = AccountStatus.CLOSED
        if event.command_id is not None:
            self.remember(event.command_id, self.version)
            if isinstance(event, ChargeDeclined):
                self.recent_outcomes[event.command_id] = PriorOutcome(status="declined", reason=event.reason)
            elif isinstance(event, CommandRejected):
                self.recent_outcomes[event.command_id] = PriorOutcome(status="rejected", reason=event.reason)

    def remember(self, command_id: str, version: int) -> None:
        self.recent_commands.pop(command_id, None)  # re-inserted as the newest
        self.recent_commands[command_id] = version
        if len(self.recent_commands) > 2 * RECENT_COMMANDS_KEPT:  # bound memory on long folds
            self._forget_oldest()

    def freeze(self) -> AccountState:
        self._forget_oldest()
        return AccountState(
            account_id=self.account_id, currency=self.currency,
            overdraft_limit=self.overdraft_limit, balance=self.balance, version=self.version,
            status=self.status, recent_commands=self.recent_commands,
            recent_outcomes=self.recent_outcomes,
        )

    def _forget_oldest(self) -> None:
        excess = len(self.recent_commands) - RECENT_COMMANDS_KEPT
        for command_id in list(islice(self.recent_commands, max(excess, 0))):
            del self.recent_commands[command_id]
            self.recent_outcomes.pop(command_id, None)


def _rejected(command: AddFunds | Charge | CloseAccount, reason: str) -> CommandRejected:
    return CommandRejected(command_id=command.command_id, command=command.kind, reason=reason)
