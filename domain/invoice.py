"""An invoice, computed from the log: pure, and the same events give the same bytes.

``compute_invoice`` takes what the log says of one billing period (the events of versions
``first_version`` to ``last_version`` of ``INVOICE_DRAFTED``, that event itself, the
``INVOICE_FINALIZED`` of its sequence if any, and the credit notes issued against it) and returns
the ``Invoice``. The projection builds the same invoice step by step (``draft``, ``finalize``,
``with_credit_note``), the reconciliation and ``invoice --recompute`` in one go; all of them end
in ``canonical``, whose bytes are what "the same invoice" means.

Figures, all in integer minor units of the account's currency:

- ``opening_balance``: the balance right before ``first_version`` (the closing balance of the
  previous invoice);
- ``funds_received``: the funds added in the period;
- a line per charge (positive) and per refund (negative, naming its charge), in version order;
  ``charges_total`` and ``refunds_total`` are their sums (``refunds_total`` <= 0);
- ``declined_count``: charges declined for insufficient funds (they moved no money);
- ``paid_out``: the balance settled as the account closed (``BALANCE_PAID_OUT``, only in the
  last period): positive when paid out to the customer, negative when collected from them;
- ``closing_balance`` = opening + funds - charges_total - refunds_total - paid_out (zero after a
  payout);
- ``amount_due`` = max(0, -closing_balance): what the customer must pay to bring the account
  back to zero. Funds are paid in advance, so charges they covered are not due again.

A refund is listed in the period it was made. When its charge was on an invoice that was final
already, the line names the credit note that corrects that invoice; the invoice itself never
changes, it only lists the notes issued against it since.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer

from domain.account import balance_change
from domain.events import (
    BalancePaidOut,
    ChargeApplied,
    ChargeDeclined,
    CreditNoteIssued,
    Event,
    FundsAdded,
    InvoiceDrafted,
    InvoiceFinalized,
    RefundApplied,
)

DOCUMENT_VERSION = 1
"""The shape of the invoice document; raise it with any change to its fields or meaning."""


class InvoiceError(ValueError):
    """The events given cannot make this invoice (a version missing, another invoice's event)."""


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("an instant needs a time zone")
    return moment.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_utc), PlainSerializer(
    lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), return_type=str, when_used="json")]
"""An instant, kept in UTC and written with microseconds and a ``Z``: one way only."""


class Logged(NamedTuple):
    """An event as the log recorded it: its version and when."""

    version: int
    recorded_at: datetime
    event: Event


class AccountFacts(NamedTuple):
    """What the invoice needs to know of the account beyond the period's events."""

    account_id: str
    currency: str
    opening_balance: int


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InvoiceLine(_Frozen):
    """A charge (positive ``amount``) or a refund (negative, naming its charge)."""

    kind: Literal["charge", "refund"]
    version: int
    recorded_at: UtcTime
    description: str
    amount: int
    command_id: str
    charge_id: str | None = None
    charge_version: int | None = None
    credit_note: str | None = None
    """For a refund of a charge on a finalized invoice: the note that corrects that invoice."""


class CreditNote(_Frozen):
    """A note crediting ``amount`` to the invoice, issued with the refund ``refund_id``."""

    number: str
    amount: int
    refund_id: str
    version: int
    issued_at: UtcTime


class Invoice(_Frozen):
    """One billing period of one account; see the module's docstring for each figure."""

    document_version: int = DOCUMENT_VERSION
    account_id: str
    currency: str
    sequence: int
    number: str | None
    status: Literal["drafted", "finalized"]
    period_start: UtcTime
    period_end: UtcTime
    first_version: int
    last_version: int
    opening_balance: int
    funds_received: int
    charges_total: int
    refunds_total: int
    declined_count: int
    paid_out: int
    closing_balance: int
    amount_due: int
    lines: tuple[InvoiceLine, ...]
    drafted_at: UtcTime
    finalized_at: UtcTime | None
    credit_notes: tuple[CreditNote, ...] = ()


def compute_invoice(account: AccountFacts, events: Sequence[Logged], drafted: Logged,
                    finalized: Logged | None = None, credit_notes: Sequence[Logged] = ()) -> Invoice:
    """The invoice of ``drafted``'s period: ``events`` must hold exactly its versions (others
    are ignored); ``finalized`` and ``credit_notes`` are taken only if they are its own."""
    invoice = draft(account, events, drafted)
    if finalized is None:
        return invoice
    invoice = finalize(invoice, finalized)
    for note in sorted(credit_notes, key=lambda logged: logged.version):
        if isinstance(note.event, CreditNoteIssued) and note.event.invoice_sequence == invoice.sequence:
            invoice = with_credit_note(invoice, note)
    return invoice


def draft(account: AccountFacts, events: Sequence[Logged], drafted: Logged) -> Invoice:
    """The invoice as drafted at the end of its period, from the events it covers."""
    event = drafted.event
    if not isinstance(event, InvoiceDrafted):
        raise InvoiceError(f"version {drafted.version} is {event.type}, not INVOICE_DRAFTED")
    covered = _covered(events, event.first_version, event.last_version)
    lines = _lines(covered)
    funds = sum(logged.event.amount for logged in covered if isinstance(logged.event, FundsAdded))
    closing = account.opening_balance + sum(balance_change(logged.event) for logged in covered)
    charges = sum(line.amount for line in lines if line.kind == "charge")
    refunds = sum(line.amount for line in lines if line.kind == "refund")
    paid_out = sum(logged.event.amount for logged in covered if isinstance(logged.event, BalancePaidOut))
    if closing != account.opening_balance + funds - charges - refunds - paid_out:
        raise InvoiceError("an event in the period moves money in a way the invoice does not show")
    return Invoice(
        account_id=account.account_id, currency=account.currency, sequence=event.sequence,
        number=None, status="drafted", period_start=event.period_start, period_end=event.period_end,
        first_version=event.first_version, last_version=event.last_version,
        opening_balance=account.opening_balance, funds_received=funds, charges_total=charges,
        refunds_total=refunds,
        declined_count=sum(isinstance(logged.event, ChargeDeclined) for logged in covered),
        paid_out=paid_out, closing_balance=closing, amount_due=max(0, -closing), lines=tuple(lines),
        drafted_at=drafted.recorded_at, finalized_at=None)


def finalize(invoice: Invoice, finalized: Logged) -> Invoice:
    """The invoice made final under its number."""
    event = finalized.event
    if not isinstance(event, InvoiceFinalized) or event.sequence != invoice.sequence:
        raise InvoiceError(f"version {finalized.version} does not finalize invoice {invoice.sequence}")
    return invoice.model_copy(update={"number": event.number, "status": "finalized",
                                      "finalized_at": _utc(finalized.recorded_at)})


def with_credit_note(invoice: Invoice, issued: Logged) -> Invoice:
    """The invoice listing one more credit note issued against it (once, whatever happens)."""
    event = issued.event
    if not isinstance(event, CreditNoteIssued) or event.invoice_sequence != invoice.sequence:
        raise InvoiceError(f"version {issued.version} is no credit note of invoice {invoice.sequence}")
    if invoice.status != "finalized":
        raise InvoiceError(f"invoice {invoice.sequence} is not final: no credit note can correct it")
    note = CreditNote(number=event.number, amount=event.amount, refund_id=event.refund_id,
                      version=issued.version, issued_at=issued.recorded_at)
    notes = {existing.number: existing for existing in (*invoice.credit_notes, note)}
    return invoice.model_copy(update={
        "credit_notes": tuple(sorted(notes.values(), key=lambda n: n.version))})


def document(invoice: Invoice) -> dict[str, Any]:
    """The invoice as JSON values (what the projection stores)."""
    return invoice.model_dump(mode="json")


def canonical(invoice: Invoice | dict[str, Any]) -> bytes:
    """The invoice's bytes: sorted keys, no spaces, UTF-8, instants in UTC with a ``Z``."""
    values = document(invoice) if isinstance(invoice, Invoice) else invoice
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _covered(events: Sequence[Logged], first: int, last: int) -> list[Logged]:
    """Exactly versions ``first``..``last`` of ``events``, in order; InvoiceError if one lacks."""
    found = {logged.version: logged for logged in events if first <= logged.version <= last}
    missing = [version for version in range(first, last + 1) if version not in found]
    if missing:
        raise InvoiceError(f"the invoice covers versions {first} to {last}, but "
                           f"{len(missing)} of them are missing (first: {missing[0]})")
    return [found[version] for version in range(first, last + 1)]


def _lines(covered: Sequence[Logged]) -> list[InvoiceLine]:
    """A line per charge and per refund; a refund names the credit note issued with it."""
    notes = {logged.event.refund_id: logged.event.number for logged in covered
             if isinstance(logged.event, CreditNoteIssued)}
    lines = []
    for version, recorded_at, event in covered:
        if isinstance(event, ChargeApplied):
            lines.append(InvoiceLine(kind="charge", version=version, recorded_at=recorded_at,
                                     description=event.description, amount=event.amount,
                                     command_id=event.command_id))
        elif isinstance(event, RefundApplied):
            lines.append(InvoiceLine(kind="refund", version=version, recorded_at=recorded_at,
                                     description=event.description, amount=-event.amount,
                                     command_id=event.command_id, charge_id=event.charge_id,
                                     charge_version=event.charge_version,
                                     credit_note=notes.get(event.command_id)))
    return lines
