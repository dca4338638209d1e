"""Invoices, their lines and their credit notes, as a projection of the log.

- ``INVOICE_DRAFTED`` writes the ``invoices`` row and its ``invoice_lines``, computed with
  ``domain.invoice`` from the account's events of the versions it covers, read from
  ``account_events`` in the same transaction (every one of them was committed before the draft).
  The opening balance is the previous invoice's closing balance (the ranges follow on from each
  other), or the log's balance before the first version when there is no previous row.
- ``INVOICE_FINALIZED`` sets the number, the status and ``finalized_at``.
- ``CREDIT_NOTE_ISSUED`` adds a ``credit_notes`` row and lists the note on its invoice.

The stored ``document`` is the invoice's JSON; ``domain.invoice.canonical`` of it is the
invoice's bytes. Under the runner's contract each event is applied once, with the checkpoint;
applying one again changes nothing (inserts keep the row there, updates write the same values),
so a retried chunk cannot leave a second row: the key is (account, sequence).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection, sql

from activities.rows import STORED_EVENT, StoredEvent
from domain.account import balance_change
from domain.events import CreditNoteIssued, InvoiceDrafted, InvoiceFinalized
from domain.invoice import (
    AccountFacts,
    Invoice,
    Logged,
    canonical,
    draft,
    finalize,
    with_credit_note,
)
from projections.base import Tables, table
from projections.feed import FeedEvent

NAME = "invoices"
TABLE, LINES, NOTES = "invoices", "invoice_lines", "credit_notes"
HANDLED = frozenset({"INVOICE_DRAFTED", "INVOICE_FINALIZED", "CREDIT_NOTE_ISSUED"})

LINE_COLUMNS = ("account_id, sequence, line, kind, version, recorded_at, description, amount,"
                " command_id, charge_id, charge_version, credit_note")


class MissingInvoice(LookupError):
    """An event about an invoice whose draft this projection never saw."""


class Invoices:
    name: str = NAME
    tables: tuple[str, ...] = (TABLE, LINES, NOTES)

    async def apply(self, conn: AsyncConnection[Any], events: Sequence[FeedEvent],
                    tables: Tables) -> None:
        for feed_event in events:
            if feed_event.stored.event_type not in HANDLED:  # most events: not even parsed
                continue
            account_id, event = feed_event.account_id, feed_event.event
            logged = Logged(feed_event.version, feed_event.stored.recorded_at, event)
            if isinstance(event, InvoiceDrafted):
                await _drafted(conn, tables, account_id, logged, event)
            elif isinstance(event, InvoiceFinalized):
                invoice = await _drafted_before(conn, tables, account_id, event.sequence, logged)
                await _save(conn, tables, finalize(invoice, logged))
            elif isinstance(event, CreditNoteIssued):
                invoice = await _drafted_before(conn, tables, account_id, event.invoice_sequence,
                                                logged)
                await _note(conn, tables, account_id, logged, event)
                await _save(conn, tables, with_credit_note(invoice, logged))


async def _drafted_before(conn: AsyncConnection[Any], tables: Tables, account_id: str, sequence: int,
                          logged: Logged) -> Invoice:
    invoice = await stored_invoice(conn, tables, account_id, sequence)
    if invoice is None:
        raise MissingInvoice(f"account {account_id}: {logged.event.type} at version "
                             f"{logged.version} names invoice {sequence}, which was never drafted")
    return invoice


async def _drafted(conn: AsyncConnection[Any], tables: Tables, account_id: str, logged: Logged,
                   event: InvoiceDrafted) -> None:
    facts = await _facts(conn, tables, account_id, event)
    invoice = draft(facts, await read_log(conn, account_id, event.first_version, event.last_version),
                    logged)
    await conn.execute(sql.SQL(
        "INSERT INTO {} (account_id, sequence, number, status, currency, period_start, period_end,"
        " first_version, last_version, opening_balance, funds_received, charges_total,"
        " refunds_total, declined_count, paid_out, closing_balance, amount_due, document, drafted_at,"
        " finalized_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " %s::jsonb, %s, %s) ON CONFLICT (account_id, sequence) DO NOTHING").format(
            table(tables, TABLE)), (*_figures(invoice), _json(invoice), invoice.drafted_at,
                                    invoice.finalized_at))
    if invoice.lines:
        async with conn.cursor() as cursor:
            await cursor.executemany(sql.SQL(
                "INSERT INTO {} (" + LINE_COLUMNS + ") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " %s, %s, %s) ON CONFLICT DO NOTHING").format(table(tables, LINES)),
                [(account_id, invoice.sequence, index, line.kind, line.version, line.recorded_at,
                  line.description, line.amount, line.command_id, line.charge_id,
                  line.charge_version, line.credit_note)
                 for index, line in enumerate(invoice.lines, start=1)])


def _figures(invoice: Invoice) -> tuple[Any, ...]:
    return (invoice.account_id, invoice.sequence, invoice.number, invoice.status, invoice.currency,
            invoice.period_start, invoice.period_end, invoice.first_version, invoice.last_version,
            invoice.opening_balance, invoice.funds_received, invoice.charges_total,
            invoice.refunds_total, invoice.declined_count, invoice.paid_out, invoice.closing_balance,
            invoice.amount_due)


async def _facts(conn: AsyncConnection[Any], tables: Tables, account_id: str,
                 event: InvoiceDrafted) -> AccountFacts:
    """The account's currency, and its balance right before the invoice's first version."""
    cursor = await conn.execute(sql.SQL(
        "SELECT (SELECT payload->>'currency' FROM account_events WHERE account_id = %s AND version = 1),"
        " (SELECT closing_balance FROM {} WHERE account_id = %s AND last_version = %s"
        "  ORDER BY sequence DESC LIMIT 1)").format(
            table(tables, TABLE)), (account_id, account_id, event.first_version - 1))
    row = await cursor.fetchone()
    assert row is not None
    currency, previous_closing = row
    if previous_closing is None:  # the first invoice, or no row for the one before it
        before = await read_log(conn, account_id, 1, event.first_version - 1)
        previous_closing = sum(balance_change(logged.event) for logged in before)
    return AccountFacts(account_id, currency, previous_closing)


async def read_log(conn: AsyncConnection[Any], account_id: str, first: int, last: int) -> list[Logged]:
    """The account's events of versions ``first`` to ``last``, from the log."""
    cursor = await conn.execute(
        f"SELECT {STORED_EVENT} FROM account_events WHERE account_id = %s"
        " AND version BETWEEN %s AND %s ORDER BY version", (account_id, first, last))
    return [Logged(stored.version, stored.recorded_at, stored.event())
            for stored in (StoredEvent(*row) for row in await cursor.fetchall())]


async def stored_invoice(conn: AsyncConnection[Any], tables: Tables, account_id: str,
                         sequence: int) -> Invoice | None:
    cursor = await conn.execute(sql.SQL("SELECT document FROM {} WHERE account_id = %s AND sequence = %s")
                                .format(table(tables, TABLE)), (account_id, sequence))
    row = await cursor.fetchone()
    return None if row is None else Invoice.model_validate(row[0])


async def _save(conn: AsyncConnection[Any], tables: Tables, invoice: Invoice) -> None:
    """A finalized invoice, or one listing one more credit note."""
    await conn.execute(sql.SQL(
        "UPDATE {} SET number = %s, status = %s, finalized_at = %s, document = %s::jsonb"
        " WHERE account_id = %s AND sequence = %s").format(table(tables, TABLE)),
        (invoice.number, invoice.status, invoice.finalized_at, _json(invoice), invoice.account_id,
         invoice.sequence))


async def _note(conn: AsyncConnection[Any], tables: Tables, account_id: str, logged: Logged,
                event: CreditNoteIssued) -> None:
    await conn.execute(sql.SQL(
        "INSERT INTO {} (number, account_id, invoice_number, invoice_sequence, amount, refund_id,"
        " version, issued_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING").format(
            table(tables, NOTES)),
        (event.number, account_id, event.invoice_number, event.invoice_sequence, event.amount,
         event.refund_id, logged.version, logged.recorded_at))


def _json(invoice: Invoice) -> str:
    return canonical(invoice).decode()
