"""The request and response bodies of the HTTP API that are its own. Fields reuse the domain's
types (account ids, ISO 4217 currencies, amounts in integer minor units, descriptions), so the
wire refuses what the account would; answers reuse ``workflows.interface`` (``AccountView``,
``CommandOutcome``) and ``starter.history`` (``History``) where they fit.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from domain.commands import AccountId, Amount, CommandId, Currency, Description, PeriodText
from domain.money import MAX_AMOUNT, usable_currencies

CurrencyCode = Annotated[Currency, Field(description="ISO 4217 code with a minor unit, e.g. USD, EUR, JPY",
                                         examples=["USD"], json_schema_extra={"enum": usable_currencies()})]


class _Body(BaseModel):
    """Strict about types (an amount is a JSON integer) and refusing unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True)


class OpenAccountRequest(_Body):
    """``POST /accounts``."""

    account_id: AccountId = Field(description="1–64 of A-Z a-z 0-9 _ . : -", examples=["acme"])
    currency: CurrencyCode
    overdraft_limit: Annotated[int, Field(ge=0, le=MAX_AMOUNT)] = Field(
        0, description="How far below zero the balance may go, in minor units")
    billing_period: PeriodText = Field(
        "monthly", description="How often an invoice is drawn up: monthly, weekly, daily or an ISO"
        " 8601 duration (P10D, PT30S); anchored at the opening instant", examples=["monthly", "P10D"])


class MoneyRequest(_Body):
    """``POST /accounts/{id}/funds`` and ``/charges``."""

    amount: Amount = Field(description="In minor units of the account's currency (cents for USD)",
                           examples=[1250])
    description: Description = ""
    currency: CurrencyCode | None = Field(
        None, description="When given, an account in another currency rejects the command (422)")


class RefundRequest(_Body):
    """``POST /accounts/{id}/refunds``."""

    charge_id: CommandId = Field(description="The Idempotency-Key of the charge to refund",
                                 examples=["invoice-42"])
    amount: Amount = Field(description="In minor units; at most what is left of the charge",
                           examples=[250])
    description: Description = ""
    currency: CurrencyCode | None = Field(
        None, description="When given, an account in another currency rejects the refund (422)")


class CloseRequest(_Body):
    """``POST /accounts/{id}/close`` (the body is optional)."""

    reason: Description = ""
    payout: bool = False
    """Pay the balance out (recorded as BALANCE_PAID_OUT) before closing; needs a reason."""


class ClosedAccount(BaseModel):
    """The answer to a close: the event that recorded it."""

    account_id: str
    command_id: str
    version: int
    reason: str
