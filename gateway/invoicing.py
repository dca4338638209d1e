"""The billing routes: refund a charge, close the running billing period, list the invoices,
read one (as JSON, or as the HTML document with ``Accept: text/html``).

A refund is a command with an ``Idempotency-Key`` like a fund or a charge; an unknown charge, or
more than is left of it, is a 422 ``command-rejected`` whose detail says which. The invoices are
read from their projection, which follows the log within moments.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import HTMLResponse

from client import new_command_id
from documents import invoice_html
from domain.invoice import Invoice
from gateway import problems
from gateway.models import RefundRequest
from gateway.problems import (
    ACCOUNT_CLOSED,
    ACCOUNT_NOT_FOUND,
    COMMAND_REJECTED,
    CURRENCY_MISMATCH,
    DATABASE_UNAVAILABLE,
    INVOICE_NOT_FOUND,
    KEY_REUSED,
    TEMPORAL_UNAVAILABLE,
    ApiProblem,
)
from gateway.routes import COMMAND_HEADERS, AccountPath, IdempotencyKey, answering, as_first_answered
from gateway.upstream import Upstream
from projections.invoice_reads import InvoiceList, find_invoice, list_invoices
from workflows.interface import CommandOutcome, PeriodClosed

router = APIRouter()

InvoiceKey = Annotated[str, Path(
    pattern=r"^[A-Za-z0-9_.-]{1,64}$", examples=["INV-2026-000001"],
    description="The invoice's number, or its sequence in the account (digits): a draft has no "
                "number yet")]


@router.post("/accounts/{account_id}/refunds", response_model=CommandOutcome, responses={
    200: {"headers": COMMAND_HEADERS}, **problems.responses(
        ACCOUNT_NOT_FOUND, ACCOUNT_CLOSED, CURRENCY_MISMATCH, COMMAND_REJECTED, KEY_REUSED,
        TEMPORAL_UNAVAILABLE)})
async def refund(account_id: AccountPath, body: RefundRequest, request: Request, response: Response,
                 idempotency_key: IdempotencyKey = None) -> CommandOutcome:
    """Give back `amount` minor units of the charge `charge_id`. When that charge's invoice is
    final, the account issues a credit note for the refund, linked to the invoice."""
    key = idempotency_key or new_command_id()
    with answering(account_id, key, response):
        accounts = await _upstream(request).accounts()
        outcome = await accounts.refund(account_id, body.amount, charge_id=body.charge_id,
                                        command_id=key, description=body.description,
                                        currency=body.currency)
        assert outcome is not None  # we wait for it
        return as_first_answered(outcome, account_id, response)


@router.post("/accounts/{account_id}/close-period", response_model=PeriodClosed,
             responses=problems.responses(ACCOUNT_NOT_FOUND, TEMPORAL_UNAVAILABLE))
async def close_period(account_id: AccountPath, request: Request) -> PeriodClosed:
    """End the running billing period now: its invoice is drafted and finalized at once. The
    answer has no number when the period had only just begun."""
    with answering(account_id):
        return await (await _upstream(request).accounts()).close_period(account_id)


@router.get("/accounts/{account_id}/invoices", response_model=InvoiceList,
            responses=problems.responses(ACCOUNT_NOT_FOUND, DATABASE_UNAVAILABLE))
async def get_invoices(account_id: AccountPath, request: Request) -> InvoiceList:
    """The account's invoices, oldest first: period, status, totals and credit notes."""
    found = await _upstream(request).read(account_id, lambda conn: list_invoices(conn, account_id))
    if found is None:
        raise ApiProblem(ACCOUNT_NOT_FOUND, f"account {account_id} not found in the event log",
                         {"account_id": account_id})
    return found


@router.get("/accounts/{account_id}/invoices/{number}", response_model=Invoice, responses={
    200: {"content": {"text/html": {"schema": {"type": "string"}}},
          "description": "The invoice: JSON, or the HTML document with `Accept: text/html`"},
    **problems.responses(INVOICE_NOT_FOUND, DATABASE_UNAVAILABLE)})
async def get_invoice(account_id: AccountPath, number: InvoiceKey, request: Request) -> Response | Invoice:
    """One invoice, by number (or sequence), with every line and the credit notes issued
    against it since."""
    found = await _upstream(request).read(account_id, lambda conn: find_invoice(conn, account_id, number))
    if found is None:
        raise ApiProblem(INVOICE_NOT_FOUND, f"account {account_id} has no invoice {number}",
                         {"account_id": account_id})
    if _wants_html(request.headers.get("accept", "")):
        return HTMLResponse(invoice_html(found))
    return found


def _wants_html(accept: str) -> bool:
    """HTML only when asked for, and not beside JSON (a browser asks for both as text/html and */*)."""
    return "text/html" in accept and "application/json" not in accept


def _upstream(request: Request) -> Upstream:
    upstream: Upstream = request.app.state.upstream
    return upstream
