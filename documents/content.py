"""What every rendering of an invoice says, in words: its title, its facts, its summary and
what each line is. The text and HTML renderings only lay these out."""

from __future__ import annotations

import hashlib

from documents.formatting import amount, instant, one_line
from domain.invoice import CreditNote, Invoice, InvoiceLine, canonical


def title(invoice: Invoice) -> str:
    if invoice.number is None:
        return f"Draft invoice {invoice.sequence} (not final yet)"
    return f"Invoice {invoice.number}"


def facts(invoice: Invoice) -> list[tuple[str, str]]:
    """(label, value) pairs for the head of the document."""
    status = (f"final since {instant(invoice.finalized_at)}" if invoice.status == "finalized"
              else f"drafted {instant(invoice.drafted_at)}, not final yet")
    return [("Account", invoice.account_id), ("Currency", invoice.currency),
            ("Period", f"{instant(invoice.period_start)} to {instant(invoice.period_end)}"),
            ("Status", status), ("Invoice sequence", str(invoice.sequence)),
            ("Covers", f"events {invoice.first_version} to {invoice.last_version} of the "
                       "account's log")]


def summary(invoice: Invoice) -> list[tuple[str, str]]:
    """(label, amount) pairs, from the opening balance to the amount due."""
    currency = invoice.currency
    settled = ([("Paid out at closing" if invoice.paid_out > 0 else "Collected at closing",
                 amount(-invoice.paid_out, currency))] if invoice.paid_out else [])
    return [("Opening balance", amount(invoice.opening_balance, currency)),
            ("Funds received", amount(invoice.funds_received, currency)),
            ("Charges", amount(-invoice.charges_total, currency)),
            ("Refunds", amount(-invoice.refunds_total, currency)),
            *settled,
            ("Closing balance", amount(invoice.closing_balance, currency)),
            ("Amount due", amount(invoice.amount_due, currency))]


AMOUNT_DUE_NOTE = ("Amount due: what brings the balance back to zero (nothing when the funds "
                   "received cover the charges).")


def declined(invoice: Invoice) -> str:
    count = invoice.declined_count
    return "" if not count else (f"{count} charge(s) declined for insufficient funds in this "
                                 "period; they are not billed.")


def describe(line: InvoiceLine) -> str:
    """What a line is, on one line."""
    text = one_line(line.description)
    if line.kind == "charge":
        return text or f"Charge {one_line(line.command_id)}"
    what = f"Refund of charge {one_line(line.charge_id or '')}"
    if line.credit_note:
        what += f" (credit note {line.credit_note})"
    return f"{what}: {text}" if text else what


def describe_note(note: CreditNote) -> str:
    return f"for refund {one_line(note.refund_id)}"


def digest(invoice: Invoice) -> str:
    """The SHA-256 of the invoice's canonical bytes: two equal digests, one invoice."""
    return hashlib.sha256(canonical(invoice)).hexdigest()
