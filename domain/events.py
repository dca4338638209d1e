"""What happened to an account: immutable events, the only thing the log stores.

Each event's ``type`` is its name in the log (``account_events.event_type``). ``command_id`` is
the command that caused it, kept so that the same command is never recorded twice, and
``command_fingerprint`` what that command asked (``Command.fingerprint``), so that the same key
sent with another command is refused. Both have columns of their own, outside the payload; the
fingerprint describes the request, not what happened, so events compare equal without it.

Events are plain frozen dataclasses, cheap to make and to fold; pydantic validates them only
where they cross a boundary (``EVENTS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountCreated:
    """Schema version 2 added ``billing_period`` and ``opened_at`` (``domain.upcasting``)."""

    type: Literal["ACCOUNT_CREATED"] = "ACCOUNT_CREATED"
    command_id: str | None = None
    command_fingerprint: str | None = field(default=None, compare=False)
    account_id: str
    currency: str
    overdraft_limit: int = 0
    billing_period: str = "monthly"
    opened_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FundsAdded:
    type: Literal["FUND_ADDED"] = "FUND_ADDED"
    command_id: str
    command_fingerprint: str | None = field(default=None, compare=False)
    amount: int
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargeApplied:
    type: Literal["CHARGE_APPLIED"] = "CHARGE_APPLIED"
    command_id: str
    command_fingerprint: str | None = field(default=None, compare=False)
    amount: int
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargeDeclined:
    type: Literal["CHARGE_DECLINED"] = "CHARGE_DECLINED"
    command_id: str
    command_fingerprint: str | None = field(default=None, compare=False)
    amount: int
    description: str = ""
    reason: str
    balance: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRejected:
    """A command that was not applied. ``command_id`` is kept only when it was well-formed,
    so a malformed command does not use up the caller's idempotency key."""

    type: Literal["COMMAND_REJECTED"] = "COMMAND_REJECTED"
    command_id: str | None = None
    command_fingerprint: str | None = field(default=None, compare=False)
    command: str
    reason: str
    received: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountClosed:
    type: Literal["ACCOUNT_CLOSED"] = "ACCOUNT_CLOSED"
    command_id: str | None = None
    command_fingerprint: str | None = field(default=None, compare=False)
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BalancePaidOut:
    """The balance settled as the account closed (``close --payout``): ``amount`` paid out to
    the holder, or, when negative, collected from them; the balance is zero after it. Recorded
    just before ACCOUNT_CLOSED, whose command id it shares in ``close_id``."""

    type: Literal["BALANCE_PAID_OUT"] = "BALANCE_PAID_OUT"
    command_id: str | None = None
    command_fingerprint: str | None = field(default=None, compare=False)
    amount: int
    reason: str
    close_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundApplied:
    """All or part of an earlier charge (``charge_id``, recorded at ``charge_version``) given back."""

    type: Literal["REFUND_APPLIED"] = "REFUND_APPLIED"
    command_id: str
    command_fingerprint: str | None = field(default=None, compare=False)
    amount: int
    charge_id: str
    charge_version: int
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceDrafted:
    """A billing period ended: invoice ``sequence`` covers versions ``first_version`` to
    ``last_version`` (the events recorded from ``period_start`` to ``period_end``)."""

    type: Literal["INVOICE_DRAFTED"] = "INVOICE_DRAFTED"
    command_id: str
    command_fingerprint: str | None = field(default=None, compare=False)
    sequence: int
    period_start: datetime
    period_end: datetime
    first_version: int
    last_version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceFinalized:
    """Invoice ``sequence`` is final, under ``number``; it never changes again."""

    type: Literal["INVOICE_FINALIZED"] = "INVOICE_FINALIZED"
    command_id: str
    command_fingerprint: str | None = field(default=None, compare=False)
    sequence: int
    number: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditNoteIssued:
    """A later refund changed a finalized invoice: this note, ``number``, credits ``amount`` to
    invoice ``invoice_number``; recorded with the refund (``refund_id``) that caused it."""

    type: Literal["CREDIT_NOTE_ISSUED"] = "CREDIT_NOTE_ISSUED"
    command_id: str | None = None
    command_fingerprint: str | None = field(default=None, compare=False)
    number: str
    invoice_number: str
    invoice_sequence: int
    amount: int
    refund_id: str


Event = Annotated[
    AccountCreated | FundsAdded | ChargeApplied | ChargeDeclined | CommandRejected | AccountClosed
    | RefundApplied | InvoiceDrafted | InvoiceFinalized | CreditNoteIssued | BalancePaidOut,
    Field(discriminator="type"),
]

EVENTS: TypeAdapter[Event] = TypeAdapter(Event)
"""Validates any event from its fields, ``type`` included, and writes it back as JSON."""
