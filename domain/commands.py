"""What a caller can ask of an account: immutable, strictly validated commands.

``command_id`` is the caller's idempotency key. A command that fails validation never becomes
one of these: the workflow turns it into ``RejectInput``, which records why, so no input is
silently dropped.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from domain.money import MAX_AMOUNT, MoneyError, currency_exponent
from domain.periods import BillingPeriod, InvalidPeriod

AccountId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
# Control characters are refused: Postgres cannot store NUL in text or jsonb, and an event that
# cannot be stored would block its account's workflow.
CommandId = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,128}$")]
Description = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]{0,500}$")]
Amount = Annotated[int, Field(strict=True, gt=0, le=MAX_AMOUNT)]


def _known_currency(code: str) -> str:
    try:
        currency_exponent(code)
    except MoneyError as error:
        raise ValueError(str(error)) from None
    return code


Currency = Annotated[str, AfterValidator(_known_currency)]
"""An ISO 4217 code with a minor unit, e.g. USD, EUR, JPY."""


def _valid_period(text: str) -> str:
    try:
        BillingPeriod.parse(text)
    except InvalidPeriod as error:
        raise ValueError(str(error)) from None
    if text != text.rstrip("\n"):  # parse's ``$`` allows one; a stored period keeps parsing
        raise ValueError(f"a billing period has no line break; got {text!r}")
    return text


PeriodText = Annotated[str, AfterValidator(_valid_period)]
"""monthly, weekly, daily or an ISO 8601 duration (P10D, PT30S)."""


class _Command(BaseModel):
    """Immutable, strict about types, and refusing unknown fields."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    ADDED_FIELDS: ClassVar[frozenset[str]] = frozenset()
    """Fields added after fingerprints of this command were first recorded: left out of the
    digest while at their default, so that a key recorded before keeps its fingerprint."""

    def fingerprint(self) -> str:
        """What the command asks, without its id: ``kind:amount:digest`` of every other field.
        The same key with another fingerprint is another command (``describe_reuse``)."""
        fields = self.model_dump(mode="json", exclude={"command_id", "kind", "amount", "facts"})
        for name in self.ADDED_FIELDS:
            if fields.get(name) == type(self).model_fields[name].default:
                del fields[name]
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
        return f"{self.kind}:{getattr(self, 'amount', '')}:{digest}"  # type: ignore[attr-defined]


_KINDS = {"add_funds": "an add_funds", "charge": "a charge", "close": "a close",
          "refund": "a refund"}


def describe_reuse(first: str, again: str) -> str:
    """What differs between two fingerprints of one key, in words."""
    (kind, amount, _), (new_kind, new_amount, _) = first.split(":"), again.split(":")
    if kind != new_kind:
        return f"the key was used for {_KINDS.get(kind, kind)}, not {_KINDS.get(new_kind, new_kind)}"
    if amount != new_amount:
        return f"the key was used for an amount of {amount}, not {new_amount}"
    return "the key was used with another description, currency, reason or payout"


class OpenAccount(_Command):
    """Open an account in one currency, optionally allowed to go below zero by ``overdraft_limit``."""

    kind: Literal["open"] = "open"
    account_id: AccountId
    currency: Currency
    overdraft_limit: Annotated[int, Field(strict=True, ge=0, le=MAX_AMOUNT)] = 0
    billing_period: PeriodText = "monthly"
    opened_at: datetime | None = None
    """When the account opens; the workflow sets it from its own clock (``workflow.now()``)."""


class AddFunds(_Command):
    """Credit the account."""

    kind: Literal["add_funds"] = "add_funds"
    command_id: CommandId
    amount: Amount
    description: Description = ""
    currency: Currency | None = None
    """When given, the account's currency must be this one."""


class Charge(_Command):
    """Debit the account, unless that would take it below ``-overdraft_limit``."""

    kind: Literal["charge"] = "charge"
    command_id: CommandId
    amount: Amount
    description: Description = ""
    currency: Currency | None = None
    """When given, the account's currency must be this one."""


class CloseAccount(_Command):
    """Close the account; every later command is rejected. An account that holds money (or
    owes it) closes only with ``payout``, which records the balance as paid out, for
    ``reason``, first."""

    ADDED_FIELDS: ClassVar[frozenset[str]] = frozenset({"payout"})
    kind: Literal["close"] = "close"
    command_id: CommandId
    reason: Description = ""
    payout: bool = False


class ChargeFacts(BaseModel):
    """What the log says of the charge a refund names, looked up just before the refund is
    decided: ``version`` 0 when there is no such charge."""

    model_config = ConfigDict(frozen=True)

    version: int = 0
    amount: int = 0
    refunded: int = 0
    invoice_sequence: int | None = None
    """The finalized invoice that billed the charge, if one has."""
    invoice_number: str | None = None
    credit_note_number: str | None = None
    """Allocated for this refund when the charge's invoice is final (a credit note is due)."""


class RefundCharge(_Command):
    """Give back all or part of the earlier charge ``charge_id`` (its idempotency key)."""

    kind: Literal["refund"] = "refund"
    command_id: CommandId
    charge_id: CommandId
    amount: Amount
    description: Description = ""
    currency: Currency | None = None
    facts: ChargeFacts | None = None
    """Filled in by the account's workflow from the log, never by the caller."""


class DraftInvoice(_Command):
    """The period ended at ``period_end`` (the workflow's timer, or ``close-period``): draft
    invoice ``sequence``."""

    kind: Literal["draft_invoice"] = "draft_invoice"
    sequence: Annotated[int, Field(strict=True, ge=1)]
    period_end: datetime

    @property
    def command_id(self) -> str:
        return f"invoice-{self.sequence}-drafted"


class FinalizeInvoice(_Command):
    """Invoice ``sequence`` is final under ``number`` (allocated just before, gaplessly)."""

    kind: Literal["finalize_invoice"] = "finalize_invoice"
    sequence: Annotated[int, Field(strict=True, ge=1)]
    number: str

    @property
    def command_id(self) -> str:
        return f"invoice-{self.sequence}-finalized"


class RejectInput(_Command):
    """Input that failed validation; deciding it records why.

    It carries no command id: a malformed command must not use up the caller's idempotency key,
    so a corrected retry under the same key is still applied."""

    kind: Literal["reject"] = "reject"
    command: str
    reason: str
    received: Any = None


MoneyCommand = AddFunds | Charge
"""The commands that move money, and the only ones a batch may carry."""

Command = Annotated[
    OpenAccount | AddFunds | Charge | CloseAccount | RefundCharge | DraftInvoice | FinalizeInvoice
    | RejectInput, Field(discriminator="kind")
]
