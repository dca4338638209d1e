"""The grammar of the billing verbs: ``refund``, ``close-period``, ``invoices`` and ``invoice``,
and the type of ``open --billing-period``."""

from __future__ import annotations

import argparse

from domain.periods import BillingPeriod, InvalidPeriod
from starter.arguments_common import account_argument, add_verb, wait_option


def billing_period(text: str) -> str:
    """``monthly``, ``weekly``, ``daily`` or an ISO 8601 duration, as ``domain.periods`` reads it."""
    try:
        BillingPeriod.parse(text)
    except InvalidPeriod as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_billing(subparsers: argparse._SubParsersAction) -> None:
    _add_refund(subparsers)
    parser = add_verb(subparsers, "close-period", "end an account's running billing period now "
                      "and finalize its invoice; prints the invoice's number", """\
examples:
  billing close-period acme
  billing close-period acme --json

The invoice covers everything recorded since the previous one; a drafted invoice still in
its grace period is finalized too.""")
    account_argument(parser)
    parser = add_verb(subparsers, "invoices", "list an account's invoices with their totals and "
                      "credit notes (needs DATABASE_URL)", """\
examples:
  billing invoices acme
  billing invoices acme --json""")
    account_argument(parser)
    _add_invoice(subparsers)


def _add_refund(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "refund", "give back all or part of an earlier charge", """\
examples:
  billing refund acme 2.25 --charge invoice-42
  billing refund acme 1.00 --charge invoice-42 --idempotency-key refund-7 --description "goodwill"

A refund is never more than what is left of the charge (charged minus refunded). When the
charge was on an invoice that is final already, a credit note for the refund is issued and
linked to that invoice (`billing invoices acme` lists it).""")
    account_argument(parser)
    parser.add_argument("amount", metavar="AMOUNT",
                        help="amount in major units of the account's currency, e.g. 2.25")
    parser.add_argument("--charge", required=True, metavar="KEY",
                        help="the idempotency key of the charge to refund")
    parser.add_argument("--idempotency-key", metavar="KEY", help="the refund's id; repeating it "
                        "never refunds twice (default: a new uuid4)")
    parser.add_argument("--description", default="", help="free text stored with the refund")
    wait_option(parser, "wait for the outcome (default), or only send the refund as a signal")


def _add_invoice(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "invoice", "show one invoice as a document, write it as HTML, "
                      "or check it against the log (needs DATABASE_URL)", """\
examples:
  billing invoice acme INV-2026-000001
  billing invoice acme INV-2026-000001 --html invoice.html
  billing invoice acme INV-2026-000001 --recompute
  billing invoice acme 3 --json          # by sequence: a draft has no number yet

--recompute builds the invoice again from the event log and compares it byte for byte with
the stored one: exit code 0 if identical, 1 (and the difference) if not.""")
    account_argument(parser)
    parser.add_argument("number", metavar="NUMBER",
                        help="the invoice's number, or its sequence in the account (1, 2, ...)")
    parser.add_argument("--html", metavar="FILE", help="also write the invoice as a standalone "
                        "HTML file")
    parser.add_argument("--recompute", action="store_true", help="rebuild it from the log and "
                        "compare byte for byte")
