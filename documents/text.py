"""An invoice as plain text for a terminal: fixed-width columns, amounts aligned."""

from __future__ import annotations

import textwrap

from documents import content
from documents.formatting import amount, instant
from domain.invoice import Invoice

DESCRIPTION_WIDTH = 48


def invoice_text(invoice: Invoice) -> str:
    """The whole invoice as text, ending with a newline."""
    head = content.title(invoice)
    out = [head, "=" * len(head)]
    width = max(len(label) for label, _ in content.facts(invoice))
    out += [f"{label:<{width}}  {value}" for label, value in content.facts(invoice)]
    out += ["", *_lines(invoice), ""]
    rows = content.summary(invoice)
    label_width = max(len(label) for label, _ in rows)
    value_width = max(len(value) for _, value in rows)
    out += [f"{label:<{label_width}}  {value:>{value_width}} {invoice.currency}" for label, value in rows]
    out.append(content.AMOUNT_DUE_NOTE)
    if declined := content.declined(invoice):
        out.append(declined)
    out += _notes(invoice)
    out += ["", f"sha256 {content.digest(invoice)}"]
    return "\n".join(out) + "\n"


def _lines(invoice: Invoice) -> list[str]:
    if not invoice.lines:
        return ["No charges or refunds in this period."]
    amounts = [amount(line.amount, invoice.currency) for line in invoice.lines]
    width = max(len("Amount"), *(len(text) for text in amounts))
    rows = [f"{'Date (UTC)':<23}  {'Description':<{DESCRIPTION_WIDTH}}  {'Amount':>{width}}"]
    for line, shown in zip(invoice.lines, amounts, strict=True):
        wrapped = textwrap.wrap(content.describe(line), DESCRIPTION_WIDTH) or [""]
        rows.append(f"{instant(line.recorded_at):<23}  {wrapped[0]:<{DESCRIPTION_WIDTH}}  "
                    f"{shown:>{width}}")
        rows += [f"{'':<23}  {more}" for more in wrapped[1:]]
    return rows


def _notes(invoice: Invoice) -> list[str]:
    if not invoice.credit_notes:
        return []
    out = ["", "Credit notes issued against this invoice since:"]
    for note in invoice.credit_notes:
        out.append(f"  {note.number}  {instant(note.issued_at)}  {content.describe_note(note)}  "
                   f"{amount(note.amount, invoice.currency)} {invoice.currency}")
    return out
