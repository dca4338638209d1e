"""The CLI's side of ``AccountClient``: the same calls, bounded by ``--timeout``, with every
``BillingError`` turned into a ``CliError`` (the CLI's words and exit code) in one place,
``cli_error``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from client import (
    AccountClient,
    AccountExists,
    AccountHasBalance,
    AccountNotFound,
    BillingError,
    CommandRefused,
    InsufficientFunds,
    InvalidCommand,
    NamespaceNotFound,
    TemporalUnavailable,
    TemporalUnreachable,
)
from config import Settings
from domain.commands import AddFunds, Charge, CloseAccount, RefundCharge
from starter.errors import CliError, ExitCode
from starter.output import money
from workflows.interface import AccountView, AccountWorkflowInput, CommandOutcome, OpenOutcome, PeriodClosed

Command = AddFunds | Charge | CloseAccount | RefundCharge


class Accounts:
    """Open, inspect, fund, charge and close accounts; every call bounded by ``--timeout``."""

    def __init__(self, client: AccountClient) -> None:
        self.client = client

    @classmethod
    async def connect(cls, settings: Settings, timeout: float) -> Accounts:
        """Connect to Temporal, or fail with a message naming TEMPORAL_ADDRESS."""
        with translated():
            return cls(await AccountClient.connect(settings, rpc_timeout=timeout))

    async def open(self, start: AccountWorkflowInput) -> OpenOutcome:
        """Start the account's workflow and wait until it has written ACCOUNT_CREATED."""
        with translated():
            return await self.client.open(start.account_id, start.currency, start.overdraft_limit,
                                          billing_period=start.billing_period,
                                          invoice_grace_seconds=start.invoice_grace_seconds)

    async def state(self, account_id: str) -> AccountView:
        """The account as its workflow sees it (the ``state`` query)."""
        with translated():
            return await self.client.state(account_id)

    async def submit(self, view: AccountView, command: AddFunds | Charge, *, wait: bool,
                     batched: bool = False) -> CommandOutcome | None:
        """Send a credit or debit: on its own as the ``add_funds``/``charge`` update (or, with
        ``wait=False``, signal), or ``batched`` with concurrent calls into ``post_batch``."""
        send = self.client.submit if batched else self.client.send_one
        with translated(view, command):
            return await send(view.account_id, command, wait=wait)

    async def refund(self, view: AccountView, command: RefundCharge, *,
                     wait: bool) -> CommandOutcome | None:
        """Send a refund as the ``refund`` update (or, with ``wait=False``, signal)."""
        with translated(view, command):
            return await self.client.send_one(view.account_id, command, wait=wait)

    async def close_period(self, account_id: str) -> PeriodClosed:
        """End the running billing period now; the closed invoice, final."""
        with translated():
            return await self.client.close_period(account_id)

    async def close(self, view: AccountView, command: CloseAccount, *,
                    wait: bool) -> CommandOutcome | None:
        """Send ``close`` as an update that answers its outcome, or (``wait=False``) a signal;
        the workflow records it after every command received before it."""
        with translated(view, command):
            return await self.client.close(view.account_id, command_id=command.command_id,
                                           reason=command.reason, payout=command.payout, wait=wait)

    async def wait_for(self, account_id: str, done: Callable[[AccountView], bool],
                       what: str) -> AccountView:
        """Poll the ``state`` query until ``done(view)``; fail after the timeout."""
        with translated():
            return await self.client.wait_for(account_id, done, what=what)

    def web_ui(self, base_url: str) -> str:
        """The Temporal web UI's list of workflows in this namespace."""
        return f"{base_url.rstrip('/')}/namespaces/{self.client.temporal.namespace}/workflows"


@contextmanager
def translated(view: AccountView | None = None, command: Command | None = None) -> Iterator[None]:
    """Raise every BillingError from the block as its CliError."""
    try:
        yield
    except BillingError as error:
        raise cli_error(error, view, command) from None


def cli_error(error: BillingError, view: AccountView | None = None,
              command: Command | None = None) -> CliError:
    """The CLI's message and exit code for ``error``; ``view`` and ``command`` add context."""
    if isinstance(error, TemporalUnreachable):
        return CliError(f"cannot reach Temporal at TEMPORAL_ADDRESS={error.address} "
                        f"({error.reason})", ExitCode.UNAVAILABLE)
    if isinstance(error, TemporalUnavailable):
        message = str(error)
        if error.command_id:
            message += (f" The command may still be applied: repeat it with --idempotency-key "
                        f"{error.command_id} to learn its outcome.")
        return CliError(message, ExitCode.UNAVAILABLE, {"command_id": error.command_id})
    if isinstance(error, CommandRefused):
        return _refused(error, view, command)
    if isinstance(error, AccountExists):
        details = {"account": error.outcome.account.model_dump(mode="json")} if error.outcome else {}
        return CliError(str(error), ExitCode.EXISTS, details)
    if isinstance(error, NamespaceNotFound):
        return CliError(f"{error} (TEMPORAL_NAMESPACE)", ExitCode.USAGE)
    if isinstance(error, InvalidCommand):
        return CliError(f"invalid {command.kind if command else 'command'}: {error}", ExitCode.USAGE)
    if isinstance(error, AccountNotFound):
        return CliError(str(error), ExitCode.NOT_FOUND)
    return CliError(str(error))


def _refused(error: CommandRefused, view: AccountView | None, command: Command | None) -> CliError:
    """A command the account recorded as declined or rejected (exit code 3)."""
    outcome = error.outcome
    details = {"outcome": outcome.model_dump(mode="json")}
    kind = command.kind if command else "command"
    account = f"account {view.account_id}" if view else "the account"
    if isinstance(error, AccountHasBalance) and view:
        return CliError(f"{account} holds {money(outcome.balance, view.currency)}: close it with "
                        "--payout --reason TEXT to pay the balance out first", ExitCode.REFUSED, details)
    if isinstance(error, InsufficientFunds) and view and isinstance(command, Charge):
        currency = view.currency
        return CliError(f"charge of {money(command.amount, currency)} declined for {account}: "
                        f"insufficient funds (balance {money(outcome.balance, currency)}, "
                        f"overdraft limit {money(view.overdraft_limit, currency)})",
                        ExitCode.REFUSED, details)
    return CliError(f"{kind} {outcome.status} by {account}: {outcome.reason}",
                    ExitCode.REFUSED, details)
