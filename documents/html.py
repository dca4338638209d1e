"""An invoice as a standalone HTML file a person would send: one file, CSS inline, no script,
no external asset, and every piece of text escaped."""

from __future__ import annotations

from html import escape

from documents import content
from documents.formatting import amount, instant
from domain.invoice import Invoice

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330;
       max-width: 52rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #dde1e8;
         vertical-align: top; }
th { background: #f3f5f8; font-weight: 600; }
td.amount, th.amount { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.facts th { width: 12rem; background: none; border: none; padding-left: 0; }
table.facts td { border: none; }
table.summary { width: auto; margin-left: auto; }
tr.due td, tr.due th { font-weight: 700; border-top: 2px solid #1d2330; }
p.note, footer { color: #5b6475; font-size: .85rem; }
footer { margin-top: 2rem; word-break: break-all; }
"""


def invoice_html(invoice: Invoice) -> str:
    """The whole invoice as one HTML document."""
    title = escape(content.title(invoice))
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<h1>{title}</h1>", _facts(invoice), "<h2>Charges and refunds</h2>", _lines(invoice),
        "<h2>Summary</h2>", _summary(invoice), f'<p class="note">{escape(content.AMOUNT_DUE_NOTE)}</p>',
    ]
    if declined := content.declined(invoice):
        parts.append(f'<p class="note">{escape(declined)}</p>')
    parts += [_notes(invoice), f"<footer>Amounts in {escape(invoice.currency)}. Document sha256 "
              f"{content.digest(invoice)}</footer>", "</body>", "</html>", ""]
    return "\n".join(part for part in parts if part)


def _facts(invoice: Invoice) -> str:
    rows = "".join(f"<tr><th>{escape(label)}</th><td>{escape(value)}</td></tr>"
                   for label, value in content.facts(invoice))
    return f'<table class="facts">{rows}</table>'


def _lines(invoice: Invoice) -> str:
    if not invoice.lines:
        return "<p>No charges or refunds in this period.</p>"
    rows = "".join(
        f"<tr><td>{escape(instant(line.recorded_at))}</td><td>{escape(content.describe(line))}</td>"
        f'<td class="amount">{escape(amount(line.amount, invoice.currency))}</td></tr>'
        for line in invoice.lines)
    return ('<table class="lines"><thead><tr><th>Date (UTC)</th><th>Description</th>'
            f'<th class="amount">Amount</th></tr></thead><tbody>{rows}</tbody></table>')


def _summary(invoice: Invoice) -> str:
    rows = []
    for label, value in content.summary(invoice):
        due = label == "Amount due"
        shown = f"{value} {invoice.currency}" if due else value
        row_class = ' class="due"' if due else ""
        rows.append(f'<tr{row_class}><th>{escape(label)}</th><td class="amount">{escape(shown)}</td></tr>')
    return f'<table class="summary">{"".join(rows)}</table>'


def _notes(invoice: Invoice) -> str:
    if not invoice.credit_notes:
        return ""
    rows = "".join(
        f"<tr><td>{escape(note.number)}</td><td>{escape(instant(note.issued_at))}</td>"
        f"<td>{escape(content.describe_note(note))}</td>"
        f'<td class="amount">{escape(amount(note.amount, invoice.currency))}</td></tr>'
        for note in invoice.credit_notes)
    return ("<h2>Credit notes issued against this invoice since</h2>"
            '<table class="notes"><thead><tr><th>Number</th><th>Issued</th><th>What</th>'
            f'<th class="amount">Amount</th></tr></thead><tbody>{rows}</tbody></table>')
