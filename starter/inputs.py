"""Command-line text to validated, typed commands, before anything is sent.

Amounts are typed in major units (``12.50``) and become integer minor units of the account's
currency; the commands are the domain's own models, so the CLI refuses exactly what the
workflow would refuse, and bad input never reaches a workflow.
"""

from __future__ import annotations

from pydantic import ValidationError

from client import new_command_id
from domain.commands import AddFunds, Charge, CloseAccount, RefundCharge
from domain.money import MoneyError, to_minor_units
from starter.errors import CliError, ExitCode
from workflows.decoding import describe_validation_error
from workflows.interface import ADD_FUNDS, AccountWorkflowInput


def parse_amount(text: str, currency: str, *, allow_zero: bool = False) -> int:
    """``"12.50", "USD"`` -> ``1250``; CliError (usage) for anything else."""
    try:
        return to_minor_units(text, currency, allow_zero=allow_zero)
    except MoneyError as error:
        raise CliError(str(error), ExitCode.USAGE) from None


def open_input(account_id: str, currency: str, overdraft_limit: str, billing_period: str = "monthly",
               invoice_grace_seconds: float = 0) -> AccountWorkflowInput:
    """The start input of a new account's workflow, checked as the workflow will check it."""
    limit = parse_amount(overdraft_limit, currency, allow_zero=True)
    try:
        start = AccountWorkflowInput(account_id=account_id, currency=currency, overdraft_limit=limit,
                                     billing_period=billing_period,
                                     invoice_grace_seconds=invoice_grace_seconds)
        start.open_command()
    except ValidationError as error:
        raise CliError(f"cannot open account: {describe_validation_error(error)}",
                       ExitCode.USAGE) from None
    return start


def money_command(kind: str, amount: str, currency: str, *, key: str | None,
                  description: str) -> AddFunds | Charge:
    """An ``add_funds`` or ``charge`` command; without ``key``, a fresh idempotency key."""
    return _validated(kind, key=key, amount=parse_amount(amount, currency), description=description,
                      currency=currency)


def check_command_fields(kind: str, *, key: str | None, description: str) -> None:
    """Check the key and description, which need no currency, before asking for the account's."""
    _validated(kind, key=key, amount=1, description=description)


def refund_command(amount: str | None, currency: str, *, charge: str, key: str | None,
                   description: str) -> RefundCharge:
    """A ``refund`` of the charge whose key is ``charge``; without ``amount`` (the fields are
    checked before the account's currency is known), a placeholder amount."""
    try:
        return RefundCharge(command_id=new_command_id() if key is None else key, charge_id=charge,
                            amount=1 if amount is None else parse_amount(amount, currency),
                            description=description, currency=currency or None)
    except ValidationError as error:
        raise _invalid("refund", error, charge_id="--charge") from None


def close_command(*, key: str | None, reason: str, payout: bool = False) -> CloseAccount:
    try:
        return CloseAccount(command_id=new_command_id() if key is None else key, reason=reason,
                            payout=payout)
    except ValidationError as error:
        raise _invalid("close", error) from None


def _validated(kind: str, *, key: str | None, amount: int, description: str,
               currency: str | None = None) -> AddFunds | Charge:
    model, verb = (AddFunds, "fund") if kind == ADD_FUNDS else (Charge, "charge")
    try:
        return model(command_id=new_command_id() if key is None else key, amount=amount,
                     description=description, currency=currency)
    except ValidationError as error:
        raise _invalid(verb, error) from None


def _invalid(verb: str, error: ValidationError, **options: str) -> CliError:
    """The CliError for a command the domain refused, in the CLI's words (``options``: more
    fields named as options, e.g. ``charge_id="--charge"``)."""
    problems = describe_validation_error(error).replace("command_id:", "--idempotency-key:")
    for name, option in options.items():
        problems = problems.replace(f"{name}:", f"{option}:")
    return CliError(f"invalid {verb}: {problems}", ExitCode.USAGE)
