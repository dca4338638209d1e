"""The billing verbs end to end, through the real worker process and ``python -m starter``: an
account opened with a billing period, a period closed on demand, its invoice listed, shown,
written as HTML and recomputed from the log, refund input refused before it is sent, and the
final invoice of a close with a payout; a refund within the period (a line) and one after its
invoice is final (a credit note linked to it)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Cli, WorkerProcess
from tests.e2e.test_cli import failed, ok, shown

ACCOUNT = "e2e-invoiced"
PROJECTION_PATIENCE = 60.0


def listed(cli: Cli, count: int) -> list[dict[str, Any]]:
    """The account's invoices once the worker's projection has ``count`` of them (bounded)."""
    deadline = time.monotonic() + PROJECTION_PATIENCE
    while len(found := json.loads(ok(cli("invoices", ACCOUNT, "--json")))["invoices"]) < count:
        assert time.monotonic() < deadline, f"{len(found)} invoice(s) after {PROJECTION_PATIENCE:g}s"
        time.sleep(0.2)
    return found


def test_an_invoice_from_period_to_document(worker_process: WorkerProcess, cli: Cli,
                                            tmp_path: Path) -> None:
    bad = cli("open", "e2e-other", "--currency", "USD", "--billing-period", "fortnightly")
    assert bad.returncode == 2 and "--billing-period" in bad.stderr, shown(bad)
    assert "opened account" in ok(cli("open", ACCOUNT, "--currency", "JPY", "--billing-period", "P10D"))
    ok(cli("fund", ACCOUNT, "5000", "--description", "top-up"))
    ok(cli("charge", ACCOUNT, "1200", "--idempotency-key", "c1", "--description", "API <calls> & more"))
    assert "amount must be greater than zero" in failed(cli("refund", ACCOUNT, "0", "--charge", "c1"), 2)
    assert "invalid refund: --charge" in failed(cli("refund", ACCOUNT, "1", "--charge", ""), 2)
    assert "applied" in ok(cli("refund", ACCOUNT, "200", "--charge", "c1", "--description", "goodwill"))

    closed = json.loads(ok(cli("close-period", ACCOUNT, "--json")))
    number = closed["number"]
    assert number and closed["sequence"] == 1, closed
    [first] = listed(cli, 1)
    assert (first["number"], first["status"], first["charges_total"], first["refunds_total"],
            first["closing_balance"], first["amount_due"], first["lines"]) == (
        number, "finalized", 1200, -200, 4000, 0, 2)
    assert number in ok(cli("invoices", ACCOUNT))
    late = json.loads(ok(cli("refund", ACCOUNT, "100", "--charge", "c1", "--idempotency-key", "r2",
                             "--json")))
    assert late["status"] == "applied", late

    page = tmp_path / "invoice.html"
    shown_invoice = ok(cli("invoice", ACCOUNT, number, "--html", str(page), "--recompute"))
    assert f"Invoice {number}" in shown_invoice and "1,200" in shown_invoice
    assert "recomputed from the log: identical, byte for byte" in shown_invoice
    html = page.read_text(encoding="utf-8")
    assert "API &lt;calls&gt; &amp; more" in html and "<calls>" not in html
    as_json = json.loads(ok(cli("invoice", ACCOUNT, "1", "--json")))
    assert as_json["invoice"]["number"] == number and len(as_json["sha256"]) == 64
    assert "has no invoice INV-NOPE" in failed(cli("invoice", ACCOUNT, "INV-NOPE"), 4)

    ok(cli("close", ACCOUNT, "--payout", "--reason", "e2e done"))
    first, final = listed(cli, 2)
    [note] = first["credit_notes"]
    assert (note["amount"], note["refund_id"]) == (100, "r2")
    assert (final["status"], final["opening_balance"], final["refunds_total"], final["paid_out"],
            final["closing_balance"]) == ("finalized", 4000, -100, 4100, 0)
    assert note["number"] in ok(cli("invoice", ACCOUNT, number))
    assert "Paid out at closing" in ok(cli("invoice", ACCOUNT, final["number"], "--recompute"))
    assert worker_process.stop() == 0, worker_process.output()
