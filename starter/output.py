"""What the CLI prints: a short line or a table for people, one JSON object with ``--json``.

Results go to stdout; a failure is one ``error: ...`` line on stderr (and, with ``--json``, also
a JSON object on stdout), so scripts can rely on both streams.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.table import Table

from domain.commands import AddFunds, Charge, RefundCharge
from domain.money import format_minor_units
from operations.reconcile.report import Report
from starter.errors import CliError
from starter.history import History
from workflows.interface import AccountView, CommandOutcome, OpenOutcome

WIDTH_WHEN_PIPED = 160
_VERBS = {"add_funds": "fund", "charge": "charge", "refund": "refund"}


def money(amount: int, currency: str) -> str:
    """``1250, "USD"`` -> ``"12.50 USD"``."""
    return f"{format_minor_units(amount, currency)} {currency}"


class Output:
    """Where a command's result or error goes, in the format the user asked for."""

    def __init__(self, as_json: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.as_json = as_json
        self._stdout, self._stderr = stdout, stderr
        self.console = Console(file=stdout, markup=False, highlight=False,
                               width=None if stdout.isatty() else WIDTH_WHEN_PIPED)

    def result(self, data: dict[str, Any], text: RenderableType) -> None:
        """Print ``data`` as JSON with ``--json``, otherwise ``text``."""
        if self.as_json:
            print(json.dumps(data, default=str), file=self._stdout)
        else:
            self.console.print(text)

    def error(self, error: CliError) -> None:
        """One ``error: ...`` line on stderr; with ``--json`` also the error as JSON on stdout."""
        print(f"error: {error.message}", file=self._stderr)
        if self.as_json:
            body = {"error": error.message, "exit_code": int(error.code), **error.details}
            print(json.dumps(body, default=str), file=self._stdout)


def opened(outcome: OpenOutcome) -> tuple[dict[str, Any], str]:
    """A newly opened account."""
    view = outcome.account
    return outcome.model_dump(mode="json"), (
        f"opened account {view.account_id} in {view.currency} (overdraft limit "
        f"{money(view.overdraft_limit, view.currency)}), version {view.version}")


def applied(view: AccountView, command: AddFunds | Charge | RefundCharge,
            outcome: CommandOutcome) -> tuple[dict[str, Any], str]:
    """A fund or charge answered by the account: applied, or a duplicate of an earlier one.

    A duplicate says where its key was first recorded and, when the account still remembers,
    what that command came to (applied, declined or rejected); it may not even have been this
    kind of command."""
    data = {"account_id": view.account_id, "command": command.kind, "amount": command.amount,
            "currency": view.currency, **outcome.model_dump(mode="json")}
    what = _what(command, view.currency)
    if outcome.status == "duplicate":
        first = (f"it was {outcome.original_status}" + (f" ({outcome.reason})" if outcome.reason else "")
                 if outcome.original_status else
                 f"see `billing history {view.account_id}` for what it came to")
        text = (f"duplicate: idempotency key {outcome.command_id} was already recorded at version "
                f"{outcome.version}; {first}; nothing changed. "
                f"Balance {money(outcome.balance, view.currency)}")
    else:
        text = (f"{outcome.status}: {what} on account {view.account_id}. Balance "
                f"{money(outcome.balance, view.currency)}, version {outcome.version}")
    return data, text


def sent(view: AccountView, command: AddFunds | Charge | RefundCharge) -> tuple[dict[str, Any], str]:
    """A fund, charge or refund sent as a signal: accepted by Temporal, outcome not awaited."""
    data = {"account_id": view.account_id, "command": command.kind, "amount": command.amount,
            "currency": view.currency, "command_id": command.command_id, "status": "sent"}
    return data, (f"sent: {_what(command, view.currency)} to account "
                  f"{view.account_id} (idempotency key {command.command_id}); not waiting for "
                  "the outcome")


def _what(command: AddFunds | Charge | RefundCharge, currency: str) -> str:
    """``fund 12.50 USD``, ``refund 2.00 USD of charge invoice-42``."""
    what = f"{_VERBS[command.kind]} {money(command.amount, currency)}"
    return f"{what} of charge {command.charge_id}" if isinstance(command, RefundCharge) else what


def balance(view: AccountView) -> tuple[dict[str, Any], str]:
    """The account as the ``state`` query returned it."""
    pending = f", {view.pending_commands} command(s) pending" if view.pending_commands else ""
    return view.model_dump(mode="json"), (
        f"account {view.account_id}: balance {money(view.balance, view.currency)} "
        f"({view.status.value}, version {view.version}, overdraft limit "
        f"{money(view.overdraft_limit, view.currency)}{pending})")


def closed(view: AccountView | None, account_id: str, command_id: str,
           paid_out: int = 0) -> tuple[dict[str, Any], str]:
    """A close, and the account after it took effect (``None`` with ``--no-wait``);
    ``paid_out``: the balance its payout settled."""
    if view is None:
        return ({"account_id": account_id, "command_id": command_id, "status": "sent"},
                f"sent: close account {account_id}; not waiting for it to take effect")
    payout = f"paid out {money(paid_out, view.currency)}; " if paid_out else ""
    return ({**view.model_dump(mode="json"), "command_id": command_id, "paid_out": paid_out},
            f"closed account {view.account_id} at version {view.version}; {payout}final balance "
            f"{money(view.balance, view.currency)}")


def history(found: History) -> tuple[dict[str, Any], Group]:
    """The event log as a table, oldest first."""
    table = Table()
    columns: tuple[tuple[str, dict[str, Any]], ...] = (
        ("version", {"justify": "right"}), ("recorded at (UTC)", {}), ("event", {}),
        ("amount", {"justify": "right"}), ("detail", {}), ("idempotency key", {}))
    for name, options in columns:
        table.add_column(name, no_wrap=name != "detail", **options)
    for event in found.events:
        amount = "" if event.amount is None else format_minor_units(event.amount, found.currency)
        table.add_row(str(event.version), _utc(event.recorded_at), event.event_type, amount,
                      event.detail, event.command_id or "")
    return found.model_dump(mode="json"), Group(f"account {found.account_id} ({found.currency})", table)


def check_report(report: Report) -> tuple[dict[str, Any], Group]:
    """What `check` looked at, a line per finding, and the verdict."""
    table = Table(title="billing check", title_justify="left")
    for name in ("accounts", "events", "workflows", "findings", "seconds"):
        table.add_column(name, justify="right")
    table.add_row(str(report.accounts_checked), str(report.events_checked),
                  str(report.workflows_checked), str(len(report.findings)),
                  f"{report.elapsed_seconds:.2f}")
    lines = [finding.line() for finding in report.findings]
    if report.repaired:
        lines.append(f"revived the workflows of {len(report.repaired)} account(s): "
                     f"{', '.join(report.repaired)}")
    if report.workflows_busy:
        lines.append(f"{report.workflows_busy} workflow(s) busy (commands pending or state "
                     "moving) differed from the log; not counted as findings")
    lines.append("ok" if report.ok else f"{len(report.findings)} finding(s)")
    return report.model_dump(mode="json"), Group(table, *lines)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
