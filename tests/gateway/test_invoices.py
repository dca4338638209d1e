"""The invoice routes in process: a period closed with ``POST .../close-period``, its invoice
listed and read as JSON (equal to the stored document) and as HTML, a refund after it is final
(a credit note on it), a refused refund, and the 404s."""

from __future__ import annotations

import httpx

from domain.invoice import Invoice, canonical
from projections import PROJECTIONS
from projections.invoice_reads import find_invoice
from projections.runner import ProjectionRunner
from tests.gateway.test_routes import open_account, problem, send


async def test_a_closed_period_is_listed_and_read_as_json_and_html(api: httpx.AsyncClient, pool,
                                                                  worker_pool) -> None:
    account_id = await open_account(api, "KWD")
    assert (await send(api, account_id, "funds", 5_000, "f1")).status_code == 200
    assert (await send(api, account_id, "charges", 1_234, "c1", description="<b>bold</b>")).status_code == 200
    closed = await api.post(f"/accounts/{account_id}/close-period")
    assert closed.status_code == 200, closed.text
    number, sequence = closed.json()["number"], closed.json()["sequence"]
    assert number and sequence == 1
    refunded = await api.post(f"/accounts/{account_id}/refunds", json={"charge_id": "c1", "amount": 34},
                              headers={"Idempotency-Key": "r1"})
    assert refunded.status_code == 200 and refunded.json()["balance"] == 3_800, refunded.text
    too_much = await api.post(f"/accounts/{account_id}/refunds", json={"charge_id": "c1", "amount": 1_201})
    problem(too_much, 422, "command-rejected")
    runner = ProjectionRunner(worker_pool, PROJECTIONS)
    while (await runner.catch_up())[0]:
        pass

    listed = await api.get(f"/accounts/{account_id}/invoices")
    assert listed.status_code == 200, listed.text
    [summary] = listed.json()["invoices"]
    assert (summary["number"], summary["charges_total"], summary["closing_balance"], summary["lines"]) == (
        number, 1_234, 3_766, 1)
    assert [(n["amount"], n["refund_id"]) for n in summary["credit_notes"]] == [(34, "r1")]

    as_json = await api.get(f"/accounts/{account_id}/invoices/{number}")
    assert as_json.status_code == 200
    async with pool.connection() as conn:
        stored = await find_invoice(conn, account_id, number)
    assert stored is not None and canonical(Invoice.model_validate(as_json.json())) == canonical(stored)
    by_sequence = await api.get(f"/accounts/{account_id}/invoices/1")
    assert by_sequence.json() == as_json.json()

    page = await api.get(f"/accounts/{account_id}/invoices/{number}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "&lt;b&gt;bold&lt;/b&gt;" in page.text and "<b>bold" not in page.text and "1.234" in page.text

    problem(await api.get(f"/accounts/{account_id}/invoices/INV-NOPE"), 404, "invoice-not-found")
    problem(await api.get("/accounts/nobody-here/invoices"), 404, "account-not-found")
