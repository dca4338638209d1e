"""Billing periods in the account's story: an invoice is drafted when a period ends, and made
final, under its number, once the grace period is over. Pure: the workflow's timers say when,
and the gapless number is allocated before ``FinalizeInvoice`` is decided."""

from __future__ import annotations

from dataclasses import replace

from domain.commands import DraftInvoice, FinalizeInvoice
from domain.events import AccountClosed, AccountCreated, Event, InvoiceDrafted, InvoiceFinalized
from domain.state import AccountState, Billing


def decide_invoice(state: AccountState, command: DraftInvoice | FinalizeInvoice) -> list[Event]:
    """The draft of the next invoice, or the finalization of one awaiting it; ``[]`` for
    anything else (a sequence drafted or finalized already)."""
    billing = state.billing
    if isinstance(command, DraftInvoice):
        if command.sequence != billing.drafted + 1 or billing.period_start is None:
            return []
        return [InvoiceDrafted(command_id=command.command_id, sequence=command.sequence,
                               period_start=billing.period_start, period_end=command.period_end,
                               first_version=billing.invoiced_through + 1, last_version=state.version)]
    if command.sequence not in {sequence for sequence, _ in billing.awaiting}:
        return []
    return [InvoiceFinalized(command_id=command.command_id, sequence=command.sequence,
                             number=command.number)]


def billing_after(billing: Billing, event: Event) -> Billing:
    """``billing`` after ``event``: the part of ``evolve`` that follows the periods."""
    if isinstance(event, AccountCreated):
        return Billing(period=event.billing_period, opened_at=event.opened_at,
                       period_start=event.opened_at)
    if isinstance(event, AccountClosed):
        return replace(billing, final_due=billing.bills)
    if isinstance(event, InvoiceDrafted):
        return replace(billing, period_start=event.period_end, drafted=event.sequence, final_due=False,
                       invoiced_through=event.last_version,
                       awaiting=(*billing.awaiting, (event.sequence, event.period_end)))
    if isinstance(event, InvoiceFinalized):
        return replace(billing, finalized=max(billing.finalized, event.sequence),
                       awaiting=tuple(a for a in billing.awaiting if a[0] != event.sequence))
    return billing
