"""The grammar of the verbs that run the system rather than an account: ``replay``,
``snapshots``, ``projections``, ``statement``, ``config``, and the pass-through tools
``schema`` and ``kafka`` (their own modules parse what follows them)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from starter.arguments_common import account_argument, add_verb

PASS_THROUGH = {"schema": "client.schemas:main", "kafka": "relay.tail:main"}
"""Verbs whose arguments belong to another module's parser, as ``up``'s do."""


def add_operations(subparsers: argparse._SubParsersAction) -> None:
    _add_replay(subparsers)
    _add_snapshots(subparsers)
    _add_projections(subparsers)
    _add_statement(subparsers)
    add_verb(subparsers, "config", "print the effective settings, secrets masked",
             "examples:\n  billing config\n  billing config --json")
    for name, help_text in (("schema", "write the JSON Schema of every message (`billing schema "
                             "--help`)"), ("kafka", "read the Kafka stream (`billing kafka tail "
                                                    "--help`)")):
        subparsers.add_parser(name, add_help=False, help=help_text)


def _add_replay(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "replay", "regenerate the accounts table and the projections "
                      "from the event log (needs the tables' owner: BILLING_MIGRATION_URL)", """\
examples:
  billing replay                          # everything, into shadow tables, swapped in at once
  billing replay --projection statement   # one projection
  billing replay --account acme           # one account's rows
  billing replay --verify                 # write nothing; print each drift; exit 1 if any

A full replay runs as a Temporal workflow (ReplayWorkflow, task queue billing-operations)
on a worker this command starts and stops; it shows in the web UI, and if it is interrupted
(Ctrl-C, a kill), running it again resumes where it stopped.""")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--account", metavar="ID", help="replay one account's rows only")
    what.add_argument("--verify", action="store_true", help="compare, write nothing")
    what.add_argument("--projection", dest="projections", metavar="NAME", action="append",
                      help="replay only this projection (repeatable): accounts, statement, "
                           "daily_totals, invoices")


def _add_snapshots(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "snapshots", "manage the accounts' snapshots",
                      "examples:\n  billing snapshots rebuild")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_verb(actions, "rebuild", "fold every account's log and store its snapshot afresh, in "
             "today's state schema", "examples:\n  billing snapshots rebuild --json")


def _add_projections(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "projections", "inspect and rebuild the projections",
                      "examples:\n  billing projections status\n  billing projections rebuild statement")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_verb(actions, "status", "each projection's position, lag in events and seconds, and "
             "failure", "examples:\n  billing projections status --json")
    rebuild = add_verb(actions, "rebuild", "rebuild one projection from the log (a replay of "
                       "it alone)", "examples:\n  billing projections rebuild daily_totals")
    rebuild.add_argument("name", metavar="NAME", help="statement, daily_totals or invoices")


def _add_statement(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "statement", "list an account's money movements with the "
                      "running balance (needs DATABASE_URL)", """\
examples:
  billing statement acme
  billing statement acme --from 2026-11-01 --to 2026-12-01T00:00:00Z --json""")
    account_argument(parser)
    parser.add_argument("--from", dest="start", type=instant, metavar="T",
                        help="from this instant (ISO 8601; a date means its start, UTC)")
    parser.add_argument("--to", dest="end", type=instant, metavar="T",
                        help="before this instant (ISO 8601)")


def instant(text: str) -> datetime:
    """An ISO 8601 date or date-time; without a zone, UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 date or time, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
