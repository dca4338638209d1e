"""The billing verbs: ``refund`` and ``close-period`` (through the account's workflow),
``invoices`` and ``invoice`` (from the invoices projection; ``--recompute`` from the log too)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table

from documents import invoice_html, invoice_text
from documents.content import digest
from documents.formatting import amount, instant
from domain.invoice import document
from operations.recompute import NotProjected, recompute
from projections.invoice_reads import InvoiceList, find_invoice, list_invoices
from starter import output
from starter.errors import CliError, ExitCode
from starter.inputs import refund_command
from starter.output import Output
from starter.reading import reading
from starter.verbs import connect, database_url
from workflows.interface import PeriodClosed


async def refund(args: argparse.Namespace, out: Output) -> None:
    """Refund (part of) a charge: the ``refund`` update, or its signal with ``--no-wait``."""
    refund_command(None, "", charge=args.charge, key=args.idempotency_key,
                   description=args.description)  # the fields, checked before connecting
    accounts = await connect(args)
    view = await accounts.state(args.account_id)
    command = refund_command(args.amount, view.currency, charge=args.charge,
                             key=args.idempotency_key, description=args.description)
    outcome = await accounts.refund(view, command, wait=args.wait)
    data, text = (output.sent(view, command) if outcome is None
                  else output.applied(view, command, outcome))
    out.result({**data, "charge_id": command.charge_id}, text)


async def close_period(args: argparse.Namespace, out: Output) -> None:
    """End the running period now; print the invoice that closed it."""
    accounts = await connect(args)
    closed = await accounts.close_period(args.account_id)
    out.result({"account_id": args.account_id, **closed.model_dump(mode="json")},
               _closed_text(args.account_id, closed))


def _closed_text(account_id: str, closed: PeriodClosed) -> str:
    if closed.number is None:
        return f"account {account_id}: no period to close (it has just begun, or the account does not bill)"
    return (f"account {account_id}: closed the period {instant(closed.period_start)} to "
            f"{instant(closed.period_end)}; invoice {closed.number} (sequence {closed.sequence}) is final")


async def invoices(args: argparse.Namespace, out: Output) -> None:
    """The account's invoices, oldest first, with totals and credit notes."""
    async with reading(database_url()) as conn:
        found = await list_invoices(conn, args.account_id)
    if found is None:
        raise CliError(f"account {args.account_id} not found in the event log", ExitCode.NOT_FOUND)
    out.result(found.model_dump(mode="json"), _invoice_table(found))


def _invoice_table(found: InvoiceList) -> Group:
    table = Table()
    figures = ("opening", "charges", "refunds", "paid out", "closing", "due")
    for name in ("invoice", "period (UTC)", "status", *figures, "credit notes"):
        table.add_column(name, justify="right" if name in figures else "left")
    currency = found.currency
    for item in found.invoices:
        notes = ", ".join(f"{note.number} ({amount(note.amount, currency)})" for note in item.credit_notes)
        table.add_row(item.number or f"draft #{item.sequence}",
                      f"{instant(item.period_start)[:-4]} to {instant(item.period_end)[:-4]}",
                      item.status, amount(item.opening_balance, currency),
                      amount(item.charges_total, currency), amount(item.refunds_total, currency),
                      amount(item.paid_out, currency), amount(item.closing_balance, currency),
                      amount(item.amount_due, currency), notes)
    title = (f"invoices of account {found.account_id} ({currency}): {len(found.invoices)}"
             + ("" if found.invoices else " (none yet: the first comes when its period ends)"))
    return Group(title, table)


async def invoice(args: argparse.Namespace, out: Output) -> int:
    """One invoice as a document; ``--html`` also writes it; ``--recompute`` checks it."""
    async with reading(database_url()) as conn, conn.transaction():
        # One snapshot: the stored invoice and the log it is recomputed from agree in time.
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        stored = await find_invoice(conn, args.account_id, args.number)
        if stored is None:
            raise CliError(f"account {args.account_id} has no invoice {args.number} (yet: invoices "
                           "appear once their period ends)", ExitCode.NOT_FOUND)
        checked = None
        if args.recompute:
            try:
                checked = await recompute(conn, stored)
            except NotProjected as error:
                raise CliError(str(error)) from None
    data: dict[str, Any] = {"invoice": document(stored), "sha256": digest(stored)}
    text = invoice_text(stored)
    if args.html:
        _write(Path(args.html), invoice_html(stored))
        data["html"] = args.html
        text += f"\nwrote {args.html}\n"
    if checked is None:
        out.result(data, text.rstrip("\n"))
        return ExitCode.OK
    data["recomputed"] = {"identical": checked.identical, "sha256": digest(checked.computed),
                          "difference": checked.difference(), "pending_events": checked.pending_events}
    lag = (f" ({checked.pending_events} later event(s) of the account not applied by the projection "
           "yet)" if checked.pending_events else "")
    verdict = (f"recomputed from the log: identical, byte for byte{lag}" if checked.identical else
               "recomputed from the log: DIFFERENT\n" + "\n".join(checked.difference()))
    out.result(data, text + "\n" + verdict)
    return ExitCode.OK if checked.identical else ExitCode.FINDINGS


def _write(path: Path, html: str) -> None:
    try:
        path.write_text(html, encoding="utf-8")
    except OSError as error:
        raise CliError(f"cannot write {path}: {error.strerror or error}", ExitCode.USAGE) from None

