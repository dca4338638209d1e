"""The invoices projection checked against the log: each invoice, built again from the events
the projection has applied (those at or before its checkpoint) with ``domain.invoice``, must
equal the stored document byte for byte, and its row, lines and credit notes must say the same.

The expected invoices are built as the log is folded (``observe``), one account at a time, and
compared with the stored rows a batch of accounts at a time (``compare``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from psycopg import AsyncConnection, sql

from activities.rows import StoredEvent
from domain.account import balance_change
from domain.events import AccountCreated, CreditNoteIssued, Event, InvoiceDrafted, InvoiceFinalized
from domain.invoice import (
    AccountFacts,
    Invoice,
    InvoiceError,
    Logged,
    canonical,
    draft,
    finalize,
    with_credit_note,
)
from domain.state import AccountState
from operations.reconcile.report import Finding
from projections import invoices
from projections.feed import FeedPosition

_ROW = ("number", "status", "opening_balance", "funds_received", "charges_total", "refunds_total",
        "declined_count", "paid_out", "closing_balance", "amount_due")


class InvoicesCheck:
    """Per account: every invoice the log has drafted, as far as the projection's checkpoint."""

    name = invoices.NAME

    def __init__(self, checkpoint: FeedPosition) -> None:
        self._checkpoint = checkpoint
        self._account = ""
        self._currency = ""
        self._period: list[Logged] = []  # the events since the last draft
        self._expected: dict[str, dict[int, Invoice | str]] = defaultdict(dict)

    def observe(self, account_id: str, at: FeedPosition, stored: StoredEvent, event: Event,
                before: AccountState, after: AccountState) -> None:
        if account_id != self._account:
            self._account, self._currency, self._period = account_id, after.currency, []
        if at > self._checkpoint:
            return  # not applied yet, nor anything after it in this account's log
        logged = Logged(stored.version, stored.recorded_at, event)
        if isinstance(event, AccountCreated):
            self._currency = event.currency
        elif isinstance(event, InvoiceDrafted | InvoiceFinalized | CreditNoteIssued):
            expected = self._expected[account_id]
            sequence = event.invoice_sequence if isinstance(event, CreditNoteIssued) else event.sequence
            try:
                expected[sequence] = self._invoice(expected.get(sequence), logged, before)
            except InvoiceError as error:
                expected[sequence] = str(error)
            if isinstance(event, InvoiceDrafted):
                self._period = []
        self._period.append(logged)

    def _invoice(self, invoice: Invoice | str | None, logged: Logged, before: AccountState) -> Invoice:
        """The invoice after ``logged``: drafted, finalized or with one more credit note."""
        event = logged.event
        if isinstance(event, InvoiceDrafted):
            covered = [e for e in self._period if event.first_version <= e.version <= event.last_version]
            opening = before.balance - sum(balance_change(e.event) for e in covered)
            return draft(AccountFacts(self._account, self._currency, opening), self._period, logged)
        if not isinstance(invoice, Invoice):
            raise InvoiceError(f"version {logged.version} names an invoice that was not drafted")
        if isinstance(event, InvoiceFinalized):
            return finalize(invoice, logged)
        return with_credit_note(invoice, logged)

    async def compare(self, conn: AsyncConnection[Any], folded: Mapping[str, AccountState]) -> list[Finding]:
        stored = await _stored(conn, list(folded))
        findings = []
        for account_id in folded:
            want, got = self._expected.pop(account_id, {}), stored.get(account_id, {})
            for sequence in sorted(set(want) | set(got)):
                findings += _drifts(account_id, sequence, want.get(sequence), got.get(sequence))
        return findings

    async def orphans(self, conn: AsyncConnection[Any], ids: list[str] | None) -> list[Finding]:
        """Invoices and credit notes of accounts that have no log at all."""
        filter_ids = sql.SQL("") if ids is None else sql.SQL(" AND t.account_id = ANY(%(ids)s)")
        findings = []
        for name in (invoices.TABLE, invoices.NOTES):
            cursor = await conn.execute(sql.SQL(
                "SELECT t.account_id, count(*) FROM {} t WHERE NOT EXISTS (SELECT 1 FROM account_events e"
                " WHERE e.account_id = t.account_id){} GROUP BY t.account_id").format(
                    sql.Identifier(name), filter_ids), {"ids": ids})
            findings += [Finding(account_id=account_id, field=f"{name}.row", expected=None,
                                 actual=f"{count} row(s)", detail="the log has no such account")
                         async for account_id, count in cursor]
        return findings


class _Stored:
    """One invoice's rows: the document and columns, its lines and its credit notes."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.lines: list[tuple[Any, ...]] = []
        self.notes: list[tuple[Any, ...]] = []


async def _stored(conn: AsyncConnection[Any], ids: list[str]) -> dict[str, dict[int, _Stored]]:
    found: dict[str, dict[int, _Stored]] = defaultdict(dict)
    cursor = await conn.execute(f"SELECT account_id, sequence, document, {', '.join(_ROW)} FROM "
                                f"{invoices.TABLE} WHERE account_id = ANY(%s)", (ids,))
    for account_id, sequence, document, *columns in await cursor.fetchall():
        found[account_id][sequence] = _Stored({"document": document, **dict(zip(_ROW, columns, strict=True))})
    cursor = await conn.execute(f"SELECT {invoices.LINE_COLUMNS} FROM {invoices.LINES}"
                                " WHERE account_id = ANY(%s) ORDER BY account_id, sequence, line", (ids,))
    for account_id, sequence, _, *line in await cursor.fetchall():
        found[account_id].setdefault(sequence, _Stored({})).lines.append(tuple(line))
    cursor = await conn.execute(f"SELECT account_id, invoice_sequence, number, amount, refund_id, version,"
                                f" issued_at FROM {invoices.NOTES} WHERE account_id = ANY(%s)"
                                " ORDER BY account_id, version", (ids,))
    for account_id, sequence, *note in await cursor.fetchall():
        found[account_id].setdefault(sequence, _Stored({})).notes.append(tuple(note))
    return found


def _drifts(account_id: str, sequence: int, want: Invoice | str | None,
            got: _Stored | None) -> list[Finding]:
    """What differs between the invoice the log makes and the stored one."""
    where = f"invoice {sequence}"
    if isinstance(want, str):
        return [Finding(account_id=account_id, field="invoices.log", expected="an invoice",
                        actual=None, detail=f"{where}: {want}")]
    if want is None or got is None or not got.row:
        return [Finding(account_id=account_id, field="invoices.row", expected="a row" if want else None,
                        actual="a row" if got and got.row else None, detail=where)]
    findings = []
    if canonical(got.row["document"]) != canonical(want):
        findings.append(Finding(account_id=account_id, field="invoices.document",
                                expected=_digest(canonical(want)),
                                actual=_digest(canonical(got.row["document"])),
                                detail=f"{where}: not the same bytes as built from the log (sha256)"))
    values = want.model_dump()
    findings += [Finding(account_id=account_id, field=f"invoices.{column}", expected=values[column],
                         actual=got.row[column], detail=where)
                 for column in _ROW if got.row[column] != values[column]]
    lines = [(line.kind, line.version, line.recorded_at, line.description, line.amount, line.command_id,
              line.charge_id, line.charge_version, line.credit_note) for line in want.lines]
    notes = [(note.number, note.amount, note.refund_id, note.version, note.issued_at)
             for note in want.credit_notes]
    for table, expected, actual in ((invoices.LINES, lines, got.lines), (invoices.NOTES, notes, got.notes)):
        if expected != actual:
            findings.append(Finding(account_id=account_id, field=f"{table}.rows",
                                    expected=f"{len(expected)} row(s)", actual=f"{len(actual)} row(s)",
                                    detail=f"{where}: they differ from the log's"))
    return findings


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]
