"""The account: its state, ``decide`` and ``evolve``. The one core.

- ``decide(state, command)`` returns the events a command produces: none when the command id
  was seen before (a duplicate delivery), otherwise exactly one.
- ``evolve(state, event)`` returns the state after one event; every event bumps the version.
- ``decide_each(state, commands)`` decides commands in order, each against the state the ones
  before it left, and says what each came to.

The workflow decides with these, the activities fold the log with them, and replay, checks and
tests call the same functions. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, get_type_hints

from pydantic import GetCoreSchemaHandler, TypeAdapter
from pydantic_core import core_schema

from domain.commands import AddFunds, Charge, CloseAccount, Command, OpenAccount, RejectInput
from domain.events import (
    AccountClosed,
    AccountCreated,
    ChargeApplied,
    ChargeDeclined,
    CommandRejected,
    Event,
    FundsAdded,
)
from domain.memory import CommandMemory, PriorOutcome

MAX_BALANCE = 10**18
"""Balances stay within ±10^18 minor units, well inside Postgres bigint."""


class AccountStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class AccountState(NamedTuple):
    """Everything needed to decide the next command. It is also the snapshot: continue-as-new
    carries it, and it is stored as a JSON object, its memory as ``recent_commands`` ({id:
    version}) and ``recent_outcomes`` ({id: outcome}, for the ids not simply applied).

    A NamedTuple because ``evolve`` makes one per event: it is built about 4x faster than a
    frozen dataclass."""

    account_id: str
    currency: str = ""
    overdraft_limit: int = 0
    balance: int = 0
    version: int = 0
    status: AccountStatus = AccountStatus.OPEN
    recent_commands: CommandMemory = CommandMemory()

    @property
    def exists(self) -> bool:
        return bool(self.currency)  # only ACCOUNT_CREATED sets it

    def knowing(self, recorded: Mapping[str, int]) -> AccountState:
        """This state, also knowing that these command ids were recorded at these versions
        (learned from the log when they were older than the state's memory)."""
        memory = self.recent_commands
        for command_id, version in recorded.items():
            memory = memory.remembering(command_id, version, PriorOutcome("unknown"))
        return self._replace(recent_commands=memory)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        """Validated from, and written as, a JSON object of the fields."""
        hints = get_type_hints(cls)
        fields = {name: core_schema.typed_dict_field(handler.generate_schema(hints[name]),
                                                     required=name not in cls._field_defaults)
                  for name in cls._fields}
        from_json = core_schema.chain_schema([
            core_schema.no_info_before_validator_function(_memory_from_json,
                                                          core_schema.typed_dict_schema(fields)),
            core_schema.no_info_plain_validator_function(lambda fields: cls(**fields))])
        return core_schema.union_schema(
            [core_schema.is_instance_schema(cls), from_json],
            serialization=core_schema.plain_serializer_function_ser_schema(_to_json))


_OUTCOMES: TypeAdapter[dict[str, PriorOutcome]] = TypeAdapter(dict[str, PriorOutcome])


def _memory_from_json(data: Any) -> Any:
    if isinstance(data, dict) and "recent_outcomes" in data:
        data = dict(data)
        outcomes = _OUTCOMES.validate_python(data.pop("recent_outcomes"))
        data["recent_commands"] = CommandMemory.of(data.get("recent_commands", {}), outcomes)
    return data


def _to_json(state: AccountState) -> dict[str, Any]:
    memory = state.recent_commands
    return {**state._asdict(), "status": state.status.value, "recent_commands": dict(memory),
            "recent_outcomes": _OUTCOMES.dump_python(memory.outcomes())}


# What pydantic_core.to_json uses for a value of no declared type (an activity's result), as it
# does for pydantic's own models; without it a NamedTuple is written as a JSON array.
AccountState.__pydantic_serializer__ = TypeAdapter(AccountState).serializer  # type: ignore[attr-defined]


def decide(state: AccountState, command: Command) -> list[Event]:
    """The events ``command`` produces against ``state``; ``[]`` when nothing happens (a
    command id seen before, or opening an account that exists)."""
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
        return [_funded(state, command)]
    if isinstance(command, Charge):
        return [_charged(state, command)]
    return [AccountClosed(command_id=command.command_id, reason=command.reason)]


def _funded(state: AccountState, command: AddFunds) -> Event:
    if state.balance + command.amount > MAX_BALANCE:
        return _rejected(command, f"balance would exceed the maximum of {MAX_BALANCE}")
    return FundsAdded(command_id=command.command_id, amount=command.amount,
                      description=command.description)


def _charged(state: AccountState, command: Charge) -> Event:
    if state.balance - command.amount < -state.overdraft_limit:
        return ChargeDeclined(
            command_id=command.command_id, amount=command.amount,
            description=command.description, balance=state.balance,
            reason=f"insufficient funds: balance {state.balance}, overdraft limit "
                   f"{state.overdraft_limit}, charge {command.amount}")
    return ChargeApplied(command_id=command.command_id, amount=command.amount,
                         description=command.description)


def _rejected(command: AddFunds | Charge | CloseAccount, reason: str) -> CommandRejected:
    return CommandRejected(command_id=command.command_id, command=command.kind, reason=reason)


def evolve(state: AccountState, event: Event) -> AccountState:
    """The state after ``event``: the one place that says what each event does to an account."""
    currency, overdraft_limit, balance, status = (state.currency, state.overdraft_limit,
                                                  state.balance, state.status)
    prior = None
    if isinstance(event, FundsAdded):
        balance += event.amount
    elif isinstance(event, ChargeApplied):
        balance -= event.amount
    elif isinstance(event, ChargeDeclined):
        prior = PriorOutcome("declined", event.reason)
    elif isinstance(event, CommandRejected):
        prior = PriorOutcome("rejected", event.reason)
    elif isinstance(event, AccountCreated):
        currency, overdraft_limit, status = event.currency, event.overdraft_limit, AccountStatus.OPEN
    elif isinstance(event, AccountClosed):
        status = AccountStatus.CLOSED
    version, memory = state.version + 1, state.recent_commands
    if event.command_id is not None:
        memory = memory.remembering(event.command_id, version, prior)
    return AccountState(state.account_id, currency, overdraft_limit, balance, version, status, memory)


@dataclass(frozen=True)
class Decision:
    """What one command came to: its events (none for a duplicate), and the balance and
    version right after it. For a duplicate, ``version`` is the event that first recorded it
    and ``prior`` what it came to then, unless it was simply applied."""

    events: list[Event]
    balance: int
    version: int
    prior: PriorOutcome | None = None


def decide_each(state: AccountState,
                commands: list[Command]) -> tuple[list[Decision], AccountState]:
    """Decide ``commands`` in order, each against the state left by the ones before it."""
    decisions = []
    for command in commands:
        events = decide(state, command)
        for event in events:
            state = evolve(state, event)
        if events:
            decisions.append(Decision(events, state.balance, state.version))
            continue
        first = state.recent_commands.recorded(getattr(command, "command_id", None))
        decisions.append(Decision(events, state.balance,
                                  first.version if first else state.version,
                                  first.prior if first else None))
    return decisions, state
