"""Verbs that read the log and its projections: ``statement``, ``balance --as-of``,
``projections status``, and ``config`` (the effective settings)."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC
from typing import Any

import psycopg
from rich.console import Group
from rich.table import Table

from config import Settings
from domain.money import format_minor_units
from projections.reads import balance_as_of, projection_status, read_statement
from starter.errors import CliError, ExitCode
from starter.history import CONNECT_TIMEOUT_SECONDS, event_log_errors
from starter.output import Output, money
from starter.verbs import database_url


@asynccontextmanager
async def reading(url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    with event_log_errors(no_log=ExitCode.USAGE):
        async with await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS) as conn:
            yield conn


async def statement(args: argparse.Namespace, out: Output) -> None:
    """The account's money movements with the balance after each (the statement projection)."""
    async with reading(database_url()) as conn:
        found = await read_statement(conn, args.account_id, args.start, args.end)
    if found is None:
        raise CliError(f"account {args.account_id} not found in the event log", ExitCode.NOT_FOUND)
    table = Table()
    for name in ("version", "recorded at (UTC)", "event", "amount", "balance", "description"):
        table.add_column(name, justify="right" if name in ("version", "amount", "balance") else "left")
    for line in found.lines:
        table.add_row(str(line.version), line.recorded_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                      line.event_type, format_minor_units(line.amount, found.currency),
                      format_minor_units(line.balance_after, found.currency), line.description)
    title = f"statement of account {found.account_id} ({found.currency}), {len(found.lines)} movement(s)"
    out.result(found.model_dump(mode="json"), Group(title, table))


async def balance_at(args: argparse.Namespace, out: Output) -> None:
    """``balance --as-of T``: folded from the log."""
    async with reading(database_url()) as conn:
        found = await balance_as_of(conn, args.account_id, args.as_of)
    if found is None:
        raise CliError(f"account {args.account_id} not found in the event log", ExitCode.NOT_FOUND)
    out.result(found.model_dump(mode="json"),
               f"account {found.account_id}: balance {money(found.balance, found.currency)} as of "
               f"{found.as_of.isoformat()} (version {found.version}, from the event log)")


async def projections_status(args: argparse.Namespace, out: Output) -> None:
    async with reading(database_url()) as conn:
        statuses = await projection_status(conn)
    table = Table()
    for name in ("projection", "events applied", "lag (events)", "lag (s)", "position", "failure"):
        table.add_column(name)
    for status in statuses:
        failure = f"stopped at {status.failed_position}: {status.failure}" if status.failure else ""
        table.add_row(status.name, str(status.events_applied), str(status.lag_events),
                      f"{status.lag_seconds:.1f}", f"{status.transaction_id}/{status.position}", failure)
    out.result({"projections": [s.model_dump(mode="json") for s in statuses]}, table)


async def show_config(args: argparse.Namespace, out: Output) -> None:
    """Every setting, where it would come from, with secrets (passwords in URLs) masked."""
    settings = Settings.from_env()
    rows = settings.described()
    table = Table()
    for name in ("variable", "value", "default"):
        table.add_column(name)
    for row in rows:
        table.add_row(row["variable"], str(row["value"]), str(row["default"]))
    out.result({"settings": rows}, table)
