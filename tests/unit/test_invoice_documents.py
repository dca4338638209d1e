"""The invoice as people read it: amounts with their currency's decimals, the text for a
terminal, and a standalone HTML file with every piece of text escaped."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest

from documents import invoice_html, invoice_text
from documents.content import digest
from documents.formatting import amount, money
from domain.events import ChargeApplied, CreditNoteIssued, FundsAdded, InvoiceDrafted, InvoiceFinalized
from domain.invoice import AccountFacts, Invoice, Logged, canonical, compute_invoice

START = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize("minor, currency, shown", [
    (123_456_789, "USD", "1,234,567.89"), (-5, "USD", "-0.05"), (0, "USD", "0.00"),
    (1_234_567, "JPY", "1,234,567"), (-999, "JPY", "-999"), (0, "JPY", "0"),
    (1_234_567, "KWD", "1,234.567"), (-1, "KWD", "-0.001"), (10**15, "EUR", "10,000,000,000,000.00"),
])
def test_amounts_have_the_currency_decimals_and_grouped_thousands(minor: int, currency: str,
                                                                 shown: str) -> None:
    assert amount(minor, currency) == shown
    assert money(minor, currency) == f"{shown} {currency}"


def invoice(currency: str = "USD", description: str = "API calls", final: bool = True) -> Invoice:
    events = [Logged(2, START + timedelta(hours=1), FundsAdded(command_id="f1", amount=1_000_000)),
              Logged(3, START + timedelta(hours=2), ChargeApplied(command_id="c1", amount=123_456,
                                                                 description=description))]
    drafted = Logged(4, START + timedelta(days=30), InvoiceDrafted(
        command_id="invoice-1-drafted", sequence=1, period_start=START,
        period_end=START + timedelta(days=30), first_version=2, last_version=3))
    finalized = Logged(5, START + timedelta(days=30), InvoiceFinalized(
        command_id="invoice-1-finalized", sequence=1, number="INV-2026-000001"))
    note = Logged(7, START + timedelta(days=31), CreditNoteIssued(
        number="CN-2026-000001", invoice_number="INV-2026-000001", invoice_sequence=1, amount=456,
        refund_id="r1"))
    return compute_invoice(AccountFacts("acme", currency, 0), events, drafted,
                           finalized if final else None, [note] if final else [])


def test_the_text_shows_the_lines_the_summary_and_the_notes() -> None:
    shown = invoice(description="API calls\nfor\tNovember")
    text = invoice_text(shown).splitlines()
    assert text[0] == "Invoice INV-2026-000001" and text[1] == "=" * len(text[0])
    line = next(row for row in text if "API calls" in row)
    assert line.startswith("2026-11-01 02:00:00 UTC") and "API calls for November" in line
    assert line.endswith("1,234.56")
    assert any(re.fullmatch(r"Closing balance\s+8,765\.44 USD", row) for row in text)
    assert any(re.fullmatch(r"Amount due\s+0\.00 USD", row) for row in text)
    assert any("CN-2026-000001" in row and "4.56 USD" in row for row in text)
    assert text[-1] == f"sha256 {digest(shown)}"


def test_a_draft_says_it_is_not_final_and_jpy_has_no_decimals() -> None:
    text = invoice_text(invoice("JPY", final=False))
    assert text.startswith("Draft invoice 1 (not final yet)")
    assert "123,456" in text and "123,456.00" not in text and "Credit notes" not in text


def test_the_html_is_one_standalone_file_with_everything_escaped() -> None:
    hostile = '<script>alert("x")</script> & <img src=http://evil.example/x.png>'
    page = invoice_html(invoice("KWD", description=hostile))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "<img" not in page and "<link" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img" in page
    assert not re.search(r"""<[^>]*\s(src|href)\s*=|url\(|@import""", page)  # no external asset
    assert "<style>" in page and 'charset="utf-8"' in page
    assert "123.456" in page and "Amounts in KWD" in page  # fils: three decimals
    assert "CN-2026-000001" in page and digest(invoice("KWD", description=hostile)) in page


@pytest.mark.parametrize("paid_out, label, shown", [
    (876_544, "Paid out at closing", "-8,765.44"), (-1_00, "Collected at closing", "1.00")])
def test_a_balance_settled_at_closing_is_in_the_summary(paid_out: int, label: str, shown: str) -> None:
    settled = invoice().model_copy(update={"paid_out": paid_out})
    assert re.search(rf"^{label}\s+{re.escape(shown)} USD$", invoice_text(settled), re.M)
    assert label in invoice_html(settled) and "at closing" not in invoice_text(invoice())


def test_the_digest_is_of_the_canonical_bytes() -> None:
    assert digest(invoice()) == hashlib.sha256(canonical(invoice())).hexdigest()
    assert digest(invoice()) != digest(invoice(description="other"))
