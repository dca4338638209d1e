"""What people ask of the invoices: an account's list, with totals and notes, and one invoice by
its number (or, before it has one, its sequence). Plain reads of the invoices projection, for the
CLI and the gateway; ``operations.recompute`` builds one again from the log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection
from pydantic import BaseModel

from domain.invoice import Invoice
from projections import invoices

MAX_SEQUENCE = 2**31 - 1
"""The largest invoice sequence the table can hold (``integer``)."""


class NoteSummary(BaseModel):
    number: str
    amount: int
    refund_id: str
    issued_at: datetime


class InvoiceSummary(BaseModel):
    """One invoice in a list: what identifies it and its totals (minor units)."""

    sequence: int
    number: str | None
    status: Literal["drafted", "finalized"]
    period_start: datetime
    period_end: datetime
    opening_balance: int
    funds_received: int
    charges_total: int
    refunds_total: int
    declined_count: int
    paid_out: int
    closing_balance: int
    amount_due: int
    lines: int
    finalized_at: datetime | None
    credit_notes: list[NoteSummary]


class InvoiceList(BaseModel):
    account_id: str
    currency: str
    invoices: list[InvoiceSummary]


_SUMMARY = """
SELECT i.sequence, i.number, i.status, i.period_start, i.period_end, i.opening_balance,
       i.funds_received, i.charges_total, i.refunds_total, i.declined_count, i.paid_out,
       i.closing_balance,
       i.amount_due, (SELECT count(*) FROM invoice_lines l
                       WHERE l.account_id = i.account_id AND l.sequence = i.sequence),
       i.finalized_at
  FROM invoices i WHERE i.account_id = %s ORDER BY i.sequence
"""


async def list_invoices(conn: AsyncConnection[Any], account_id: str) -> InvoiceList | None:
    """The account's invoices, oldest first, each with its credit notes; None when the log has
    no such account."""
    currency = await account_currency(conn, account_id)
    if currency is None:
        return None
    cursor = await conn.execute(f"SELECT invoice_sequence, number, amount, refund_id, issued_at FROM"
                                f" {invoices.NOTES} WHERE account_id = %s ORDER BY version", (account_id,))
    notes: dict[int, list[NoteSummary]] = {}
    for sequence, number, amount, refund_id, issued_at in await cursor.fetchall():
        notes.setdefault(sequence, []).append(
            NoteSummary(number=number, amount=amount, refund_id=refund_id, issued_at=issued_at))
    cursor = await conn.execute(_SUMMARY, (account_id,))
    names = [name for name in InvoiceSummary.model_fields if name != "credit_notes"]
    found = [InvoiceSummary(**dict(zip(names, row, strict=True)), credit_notes=notes.get(row[0], []))
             for row in await cursor.fetchall()]
    return InvoiceList(account_id=account_id, currency=currency, invoices=found)


async def find_invoice(conn: AsyncConnection[Any], account_id: str, key: str) -> Invoice | None:
    """The stored invoice ``key`` of the account: its number, or its sequence (digits only)."""
    by_sequence = key.isascii() and key.isdigit()
    if by_sequence and int(key) > MAX_SEQUENCE:
        return None
    column = "sequence" if by_sequence else "number"
    cursor = await conn.execute(f"SELECT document FROM {invoices.TABLE} WHERE account_id = %s"
                                f" AND {column} = %s", (account_id, int(key) if by_sequence else key))
    row = await cursor.fetchone()
    return None if row is None else Invoice.model_validate(row[0])


async def account_currency(conn: AsyncConnection[Any], account_id: str) -> str | None:
    cursor = await conn.execute(
        "SELECT payload->>'currency' FROM account_events WHERE account_id = %s AND version = 1",
        (account_id,))
    row = await cursor.fetchone()
    return row[0] if row else None
