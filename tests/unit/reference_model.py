"""A deliberately naive reference model of the account ledger, written from the README alone.

It is the oracle of the model-based test (``tests/integration/test_model_based.py``): the real
system (signals, updates, the client, the workflow, Postgres) must agree with it on every
outcome, balance, version and event. It does not import ``domain`` on purpose: if the core and
this model were the same code, a mistake in one would be a mistake in both and go unnoticed.

One ``RefAccount`` per account; ``validate`` says whether a payload is a well-formed command,
``apply`` what a well-formed command does. Everything is single-threaded and in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_AMOUNT = 10**15
MAX_BALANCE = 10**18
MAX_BATCH = 1_000
MONEY_FIELDS = {"command_id", "amount", "description"}
CLOSE_FIELDS = {"command_id", "reason", "payout"}
GENERATED = "<generated close id>"
"""Stands for the id the workflow gives a close sent without one (``close-<uuid>``)."""


@dataclass(frozen=True)
class RefEvent:
    type: str
    command_id: str | None
    amount: int | None = None
    command: str | None = None  # for COMMAND_REJECTED of a well-formed command: its kind


@dataclass(frozen=True)
class RefOutcome:
    """What happened to one command: ``applied``, ``declined``, ``rejected``, ``duplicate``,
    ``refused``; a duplicate also tells what the command it repeats came to
    (``original_status``). ``refused``: the id came back with another command; nothing happens."""

    command_id: str | None
    status: str
    balance: int
    version: int
    original_status: str | None = None


@dataclass
class RefAccount:
    account_id: str
    currency: str
    overdraft_limit: int
    balance: int = 0
    closed: bool = False
    # id -> (version, status, what the command asked: kind, amount, description or reason)
    seen: dict[str, tuple[int, str, tuple[Any, ...]]] = field(default_factory=dict)
    log: list[RefEvent] = field(default_factory=list)
    _asked: tuple[Any, ...] = ()  # the command being applied

    def __post_init__(self) -> None:
        self.log.append(RefEvent("ACCOUNT_CREATED", None))

    @property
    def version(self) -> int:
        return len(self.log)

    @property
    def status(self) -> str:
        return "closed" if self.closed else "open"

    def apply(self, kind: str, command: dict[str, Any]) -> RefOutcome:
        """A well-formed ``add_funds``, ``charge`` or ``close`` (``command`` already validated)."""
        command_id = command.get("command_id", GENERATED)
        amount = command.get("amount")
        asked = (kind, amount, command.get("reason" if kind == "close" else "description", ""),
                 command.get("payout", False))
        if command_id in self.seen:
            version, status, first = self.seen[command_id]
            if first != asked:
                return RefOutcome(command_id, "refused", self.balance, version)
            return RefOutcome(command_id, "duplicate", self.balance, version, status)
        self._asked = asked
        if self.closed:
            return self._record(RefEvent("COMMAND_REJECTED", command_id, command=kind), "rejected")
        if kind == "close":
            return self._close(command_id, command.get("reason", ""), command.get("payout", False))
        assert amount is not None, command  # a well-formed add_funds or charge has an amount
        if kind == "add_funds":
            if self.balance + amount > MAX_BALANCE:
                return self._record(RefEvent("COMMAND_REJECTED", command_id, command=kind), "rejected")
            self.balance += amount
            return self._record(RefEvent("FUND_ADDED", command_id, amount), "applied")
        if self.balance - amount < -self.overdraft_limit:
            return self._record(RefEvent("CHARGE_DECLINED", command_id, amount), "declined")
        self.balance -= amount
        return self._record(RefEvent("CHARGE_APPLIED", command_id, amount), "applied")

    def _close(self, command_id: str, reason: str, payout: bool) -> RefOutcome:
        """A balance must be paid out, with a reason, by the close itself (BALANCE_PAID_OUT
        first); the final invoice follows later (``final_invoice``)."""
        if self.balance and (not payout or not reason.strip()):
            return self._record(RefEvent("COMMAND_REJECTED", command_id, command="close"), "rejected")
        if self.balance:
            self.log.append(RefEvent("BALANCE_PAID_OUT", None, self.balance))
            self.balance = 0
        self.closed = True
        return self._record(RefEvent("ACCOUNT_CLOSED", command_id), "applied")

    def final_invoice(self) -> None:
        """What the workflow records once a close is applied and nothing else waits."""
        self.log += [RefEvent("INVOICE_DRAFTED", "invoice-1-drafted"),
                     RefEvent("INVOICE_FINALIZED", "invoice-1-finalized")]

    def malformed_signal(self) -> None:
        """A malformed signal is recorded, without a command id, whatever the account's status."""
        self.log.append(RefEvent("COMMAND_REJECTED", None))

    def _record(self, event: RefEvent, status: str) -> RefOutcome:
        self.log.append(event)
        assert event.command_id is not None  # apply's events carry the command's id
        if event.command_id != GENERATED:
            self.seen[event.command_id] = (self.version, status, self._asked)
        return RefOutcome(event.command_id, status, self.balance, self.version)


# --- validation, from the README's description of a command ------------------------------------

def _is_text(value: Any, longest: int, allowed_controls: str = "") -> bool:
    return (isinstance(value, str) and len(value) <= longest
            and not any((ord(c) < 32 or ord(c) == 127) and c not in allowed_controls for c in value))


def money_problem(payload: Any, *, with_kind: bool = False) -> str | None:
    """Why ``payload`` is not a well-formed ``add_funds``/``charge`` command, or None."""
    if not isinstance(payload, dict):
        return "not an object"
    allowed = MONEY_FIELDS | {"kind"} if with_kind else MONEY_FIELDS
    if with_kind and payload.get("kind") not in ("add_funds", "charge"):
        return "kind"
    if set(payload) - allowed:
        return "unknown field"
    command_id, amount = payload.get("command_id"), payload.get("amount")
    if not (_is_text(command_id, 128) and command_id):
        return "command_id"
    if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
        return "amount"
    if not _is_text(payload.get("description", ""), 500, "\t\n\r"):
        return "description"
    return None


def close_problem(args: list[Any]) -> str | None:
    """Why the arguments of a ``close`` signal are not a well-formed close, or None. A lone
    null is no argument (Go's SDK sends an absent argument so)."""
    if not args or args == [None]:
        return None
    if len(args) != 1 or not isinstance(args[0], dict):
        return "expected one object"
    payload = args[0]
    if set(payload) - CLOSE_FIELDS:
        return "unknown field"
    if "command_id" in payload and not (_is_text(payload["command_id"], 128) and payload["command_id"]):
        return "command_id"
    if not _is_text(payload.get("reason", ""), 500, "\t\n\r"):
        return "reason"
    return None


def batch_problems(payload: Any) -> list[str | None] | str:
    """For a ``post_batch`` payload: a problem per command (None when it is fine), or one problem
    (a string) when the envelope itself is malformed."""
    if not isinstance(payload, dict) or set(payload) != {"commands"}:
        return "envelope"
    commands = payload["commands"]
    if not isinstance(commands, list) or not 1 <= len(commands) <= MAX_BATCH:
        return "envelope"
    return [money_problem(item, with_kind=True) for item in commands]
