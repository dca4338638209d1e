"""The work of each verb: validate the arguments, make the calls, print the result.

Every function takes the parsed arguments and an ``Output``, and raises ``CliError`` on any
failure; ``cli.run`` turns that into the error line and the exit code.
"""

from __future__ import annotations

import argparse

from config import ConfigError, Settings
from domain.state import AccountStatus
from starter import output
from starter.accounts import Accounts
from starter.errors import CliError, ExitCode
from starter.history import read_history
from starter.inputs import check_command_fields, close_command, money_command, open_input
from starter.output import Output
from workflows.interface import ADD_FUNDS, CHARGE


async def connect(args: argparse.Namespace) -> Accounts:
    """Accounts over a Temporal client configured from the environment."""
    return await Accounts.connect(Settings.from_env(), args.timeout)


async def open_account(args: argparse.Namespace, out: Output) -> None:
    """Validate locally, start the account's workflow, and report what it created."""
    settings = Settings.from_env()
    start = open_input(args.account_id, args.currency, args.overdraft_limit, args.billing_period,
                       settings.invoice_grace_seconds)
    accounts = await Accounts.connect(settings, args.timeout)
    out.result(*output.opened(await accounts.open(start)))


async def fund(args: argparse.Namespace, out: Output) -> None:
    """Credit the account (update ``add_funds``, or the signal with ``--no-wait``)."""
    await _move_money(ADD_FUNDS, args, out)


async def charge(args: argparse.Namespace, out: Output) -> None:
    """Debit the account (update ``charge``, or the signal with ``--no-wait``)."""
    await _move_money(CHARGE, args, out)


async def _move_money(kind: str, args: argparse.Namespace, out: Output) -> None:
    """Fund or charge: the amount is parsed in the account's currency, so ask for it first."""
    check_command_fields(kind, key=args.idempotency_key, description=args.description)
    accounts = await connect(args)
    view = await accounts.state(args.account_id)
    command = money_command(kind, args.amount, view.currency, key=args.idempotency_key,
                            description=args.description)
    outcome = await accounts.submit(view, command, wait=args.wait)
    if outcome is None:
        out.result(*output.sent(view, command))
    else:
        out.result(*output.applied(view, command, outcome))


async def balance(args: argparse.Namespace, out: Output) -> None:
    """The ``state`` query: balance, version, status, commands still pending; with
    ``--as-of``, the balance at that instant, folded from the event log."""
    if args.as_of is not None:
        from starter.reading import balance_at

        return await balance_at(args, out)
    accounts = await connect(args)
    out.result(*output.balance(await accounts.state(args.account_id)))


async def history(args: argparse.Namespace, out: Output) -> None:
    """The account's events, from Postgres rather than Temporal."""
    out.result(*output.history(await read_history(database_url(), args.account_id)))


def database_url(settings: Settings | None = None) -> str:
    """DATABASE_URL, or a usage error saying it is not set."""
    try:
        return (settings or Settings.from_env()).require_database_url()
    except ConfigError as error:
        raise CliError(str(error), ExitCode.USAGE) from None


async def close(args: argparse.Namespace, out: Output) -> None:
    """Close (an update that answers once the close is recorded), or with ``--no-wait`` signal
    it. A balance is refused unless ``--payout`` pays it out first."""
    command = close_command(key=args.idempotency_key, reason=args.reason, payout=args.payout)
    accounts = await connect(args)
    view = await accounts.state(args.account_id)
    if view.status is AccountStatus.CLOSED:
        raise CliError(f"account {args.account_id} is already closed", ExitCode.REFUSED)
    outcome = await accounts.close(view, command, wait=args.wait)
    paid_out = view.balance if outcome is not None and outcome.status == "applied" else 0
    if args.wait:
        view = await accounts.state(args.account_id)
    out.result(*output.closed(view if args.wait else None, args.account_id, command.command_id,
                              paid_out))
