"""The ``billing`` command line's grammar: every verb, its options, its help and examples.

``build_parser()`` only describes the arguments; ``starter.cli`` parses and dispatches. Amounts
stay text here: they become minor units once the account's currency is known.
"""

from __future__ import annotations

import argparse

from starter.arguments_common import (
    Parser,
    account_argument,
    add_common_options,
    add_verb,
    positive_int,
    wait_option,
)
from starter.billing_grammar import add_billing, billing_period
from starter.operations_grammar import add_operations, instant

DEFAULT_UI_URL = "http://localhost:8233"

DESCRIPTION = ("Open, fund, charge, refund, inspect, invoice and close accounts of the billing "
               "service, and reconcile its event log.")
EPILOG = """\
examples:
  billing open acme --currency USD --overdraft-limit 10.00
  billing fund acme 12.50 --idempotency-key invoice-41
  billing charge acme 2.25 --description "API calls, May"
  billing balance acme --json
  billing history acme
  billing demo --accounts 5 --operations 200
  billing check --no-workflows
  billing statement acme --from 2026-11-01
  billing open acme-daily --currency EUR --billing-period daily
  billing refund acme 2.25 --charge invoice-42
  billing close-period acme
  billing invoices acme
  billing invoice acme INV-2026-000001 --html invoice.html --recompute
  billing replay --verify
  billing projections status

settings (environment):
  TEMPORAL_ADDRESS    Temporal frontend host:port (default 127.0.0.1:7233)
  TEMPORAL_NAMESPACE  Temporal namespace (default "default")
  BILLING_TASK_QUEUE  task queue of the account workflows (default "billing")
  DATABASE_URL        the event store, for `history`, `statement`, `check` and the demo
  BILLING_MIGRATION_URL  the tables' owner, for `replay` and `snapshots rebuild`
  (`billing config` prints every setting)

exit codes:
  0 done   1 unexpected failure (`check`: findings)   2 bad arguments, input or settings
  3 declined or rejected
  4 account not found   5 account already exists   6 Temporal, worker or Postgres unavailable
"""


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``billing [--json] [--timeout S] VERB ...``."""
    parser = Parser(prog="billing", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser, defaults=True)
    subparsers = parser.add_subparsers(dest="verb", required=True, metavar="VERB",
                                       parser_class=Parser)
    for add in (_add_open, _add_money_verbs, _add_balance_and_history, _add_close, add_billing,
                _add_demo, _add_check, add_operations):
        add(subparsers)
    # `up` belongs to devstack.up: everything after it is passed on untouched.
    subparsers.add_parser("up", add_help=False, help="start the whole stack on this machine "
                          "(`billing up --help` for its options)")
    return parser


def _add_open(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "open", "open a new account in one currency", """\
examples:
  billing open acme --currency USD
  billing open acme-eu --currency EUR --overdraft-limit 250.00
  billing open acme-test --currency USD --billing-period PT30S

Each billing period ends with an invoice; its numbered, final version follows after
BILLING_INVOICE_GRACE seconds (default 0).""")
    account_argument(parser)
    parser.add_argument("--currency", required=True, type=str.upper,
                        help="ISO 4217 code of the account's currency, e.g. USD, EUR, JPY")
    parser.add_argument("--overdraft-limit", default="0", metavar="AMOUNT",
                        help="how far below zero charges may take the balance (default 0)")
    parser.add_argument("--billing-period", default="monthly", type=billing_period, metavar="PERIOD",
                        help="monthly (default), weekly, daily or an ISO 8601 duration such as "
                             "P10D or PT30S, counted from the opening instant")


def _add_money_verbs(subparsers: argparse._SubParsersAction) -> None:
    for name, help, example in (("fund", "add funds to an account", "fund acme 12.50"),
                                ("charge", "charge an account", "charge acme 2.25")):
        parser = add_verb(subparsers, name, help, f"""\
examples:
  billing {example}
  billing {example} --idempotency-key invoice-42 --description "invoice 42"
  billing {example} --no-wait

Repeating a command with the same --idempotency-key is safe: the account records the
key once, and answers a repeat with "duplicate" and the version that first recorded it
(applied, declined or rejected: `billing history` shows which).""")
        account_argument(parser)
        parser.add_argument("amount", metavar="AMOUNT",
                            help="amount in major units of the account's currency, e.g. 12.50")
        parser.add_argument("--idempotency-key", metavar="KEY", help="the command's id; repeating "
                            "it never applies it twice (default: a new uuid4)")
        parser.add_argument("--description", default="", help="free text stored with the event")
        wait_option(parser, "wait for the outcome (default), or only send the command as a signal")


def _add_balance_and_history(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "balance", "show an account's balance and version", """\
examples:
  billing balance acme
  billing balance acme --json
  billing balance acme --as-of 2026-11-30T12:00:00Z   # from the event log (needs DATABASE_URL)""")
    account_argument(parser)
    parser.add_argument("--as-of", type=instant, metavar="T", help="the balance at this instant "
                        "(ISO 8601), folded from the event log, with the version it reflects")
    parser = add_verb(subparsers, "history",
                      "list an account's events from the event log (needs DATABASE_URL)",
                      "examples:\n  billing history acme\n  billing history acme --json")
    account_argument(parser)


def _add_close(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "close", "close an account; later commands are rejected", """\
An account that holds money (or owes it) is refused (exit 3, naming the balance) unless
--payout records the balance as paid out first; its last invoice is made final at once.

examples:
  billing close acme
  billing close acme --payout --reason "customer left, balance sent by wire"
  billing close acme --reason "customer left" --no-wait""")
    account_argument(parser)
    parser.add_argument("--reason", default="", help="why, stored with the event (needed with --payout)")
    parser.add_argument("--payout", action="store_true",
                        help="pay the balance out (BALANCE_PAID_OUT), then close")
    parser.add_argument("--idempotency-key", metavar="KEY",
                        help="the close command's id (default: a new uuid4)")
    wait_option(parser, "wait for the close's outcome (default); --no-wait signals it")


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "demo",
                      "open demo accounts and send them a burst of funds and charges", """\
examples:
  billing demo
  billing demo --accounts 20 --operations 2000 --currency EUR

The operations go through the client's batching path: concurrent calls to one account
leave together as one post_batch message (an update if any caller waits for its outcome,
as every tenth does; else a signal). The demo then waits until every account has recorded
them all and prints the balances.""")
    parser.add_argument("--accounts", type=positive_int, default=5, metavar="N",
                        help="how many accounts to open (default 5)")
    parser.add_argument("--operations", type=positive_int, default=200, metavar="M",
                        help="how many funds and charges to send (default 200)")
    parser.add_argument("--currency", type=str.upper, default="USD",
                        help="the accounts' currency (default USD)")
    parser.add_argument("--concurrency", type=positive_int, default=128, metavar="K",
                        help="at most this many callers at once; more callers, bigger batches "
                        "(default 128)")
    parser.add_argument("--ui-url", default=DEFAULT_UI_URL, metavar="URL", help="the Temporal "
                        f"web UI, for the link printed at the end (default {DEFAULT_UI_URL})")


def _add_check(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "check", "reconcile the event log with the accounts table and "
                      "the running workflows (needs DATABASE_URL)", """\
examples:
  billing check
  billing check --no-workflows --json
  billing check --account acme --account acme-eu
  billing check --repair        # revive the workflows of open accounts that have none

Exit codes: 0 everything reconciles, 1 findings (one line each), 2 usage or configuration
(DATABASE_URL unset, database not migrated), 6 Postgres or Temporal unavailable.""")
    parser.add_argument("--no-workflows", action="store_true",
                        help="check the database only; do not query Temporal")
    parser.add_argument("--repair", action="store_true",
                        help="revive, from the log, the workflow of every open account found "
                             "without one running (terminated, or lost with Temporal's data)")
    parser.add_argument("--account", dest="accounts", metavar="ID", nargs="+", action="extend",
                        help="check only these accounts (repeatable)")


