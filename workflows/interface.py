"""The account workflow's public interface: names, inputs, outcomes and typed errors.

Everything a caller needs to talk to an account, in Python or (through the JSON these models
describe) in any other language. Decoding what arrives is ``workflows.decoding``'s job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.commands import AddFunds, Charge, OpenAccount
from domain.state import AccountState, AccountStatus

WORKFLOW_TYPE = "AccountWorkflow"
ADD_FUNDS, CHARGE, CLOSE, POST_BATCH = "add_funds", "charge", "close", "post_batch"
REFUND = "refund"
CLOSE_PERIOD = "close_period"
"""The update that ends the running billing period now and finalizes its invoice."""
OPENED = "opened"
STATE = "state"
"""The query that answers an ``AccountView``."""
SIGNALS = (ADD_FUNDS, CHARGE, CLOSE, POST_BATCH, REFUND)
COMMAND_UPDATES = (ADD_FUNDS, CHARGE, CLOSE, POST_BATCH, REFUND)
"""The updates that carry commands; ``opened`` and ``close_period`` are the others."""
MAX_BATCH_COMMANDS = 1_000
"""The most commands one ``post_batch`` message may carry."""
MAX_BATCH_BYTES = 1_000_000
"""The most one ``post_batch`` update may weigh as JSON. Temporal refuses payloads over 2 MB,
and an update's input is copied into its acceptance: 1,000 maximal commands (128-character ids,
500-character descriptions in 4-byte UTF-8) would weigh 2.6 MB."""

# ApplicationError types that callers can match on.
INVALID_COMMAND = "InvalidCommand"
INVALID_ACCOUNT = "InvalidAccount"
INSUFFICIENT_FUNDS = "InsufficientFunds"
COMMAND_REJECTED = "CommandRejected"
IDEMPOTENCY_KEY_REUSED = "IdempotencyKeyReused"
ACCOUNT_HAS_BALANCE = "AccountHasBalance"
"""A close refused because the account holds money or owes it; close with ``payout``."""


def workflow_id(account_id: str) -> str:
    """The id of the workflow that owns ``account_id``."""
    return f"account-{account_id}"


class AccountWorkflowInput(BaseModel):
    """Start input. ``snapshot`` is set only by continue-as-new; ``history_budget`` caps the
    history length of one run (tests set it small to exercise continue-as-new)."""

    model_config = ConfigDict(extra="forbid")

    account_id: str
    currency: str = ""
    overdraft_limit: int = 0
    billing_period: str = "monthly"
    """``monthly``, ``weekly``, ``daily`` or an ISO 8601 duration (``P10D``, ``PT30S``)."""
    invoice_grace_seconds: float = Field(default=0, ge=0)
    """How long a drafted invoice waits before it is finalized (a durable timer)."""
    revive: bool = False
    """Start only to serve an account the log holds (signal- or update-with-start, when its
    workflow is gone): never open one. A run revived for an account the log does not hold
    refuses its commands (``account does not exist``), records nothing and ends."""
    snapshot: AccountState | None = None
    history_budget: int = Field(default=10_000, ge=10)
    max_batch: int = Field(default=MAX_BATCH_COMMANDS, ge=1, le=2_000)
    local_activities: bool = True
    """Run the event-store activities as local activities: one workflow task per batch instead
    of a server round trip before and after the store call, and a small marker in the history
    instead of the whole batch. Measured in bench/ (BENCHMARKS.md)."""

    def open_command(self, opened_at: datetime | None = None) -> OpenAccount:
        """The command that opens this account, at ``opened_at`` (the workflow's clock)."""
        return OpenAccount.model_validate(
            {"account_id": self.account_id, "currency": self.currency,
             "overdraft_limit": self.overdraft_limit, "billing_period": self.billing_period,
             "opened_at": opened_at}
        )

    def continued(self, state: AccountState) -> AccountWorkflowInput:
        """The input of the next run: the same settings, carrying ``state``."""
        return self.model_copy(update={"snapshot": state})


BatchItem = Annotated[AddFunds | Charge, Field(discriminator="kind")]


class PostBatch(BaseModel):
    """The ``post_batch`` signal's and update's argument: 1 to 1,000 funds and charges, applied
    in order. A malformed item is rejected on its own; the others still apply."""

    model_config = ConfigDict(extra="forbid")

    commands: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH_COMMANDS)


class CommandOutcome(BaseModel):
    """What happened to one command. ``version`` is the event that recorded it and ``balance``
    the balance right after it.

    A ``duplicate`` (a command id seen before) changes nothing: ``version`` is the event that
    first recorded the id, ``balance`` today's balance, and ``original_status`` (with
    ``reason``) what the first command came to, so a caller that lost the first answer learns
    it. ``original_status`` is None only for an id recorded before the log kept outcomes
    beside ids; the event at ``version`` in the log tells.

    ``refused``: the key was used before for another command (``reason`` says what differs);
    nothing was recorded, and ``version`` is the event that recorded the first one."""

    command_id: str | None
    status: Literal["applied", "declined", "rejected", "duplicate", "refused"]
    reason: str = ""
    balance: int
    version: int
    original_status: Literal["applied", "declined", "rejected"] | None = None


class AccountView(BaseModel):
    """The ``state`` query's answer."""

    account_id: str
    currency: str
    balance: int
    version: int
    status: AccountStatus
    overdraft_limit: int
    pending_commands: int = 0
    """Commands received but not yet stored; 0 means the log holds everything sent so far."""

    @classmethod
    def of(cls, state: AccountState, pending: int = 0) -> AccountView:
        return cls(account_id=state.account_id, currency=state.currency, balance=state.balance,
                   version=state.version, status=state.status,
                   overdraft_limit=state.overdraft_limit, pending_commands=pending)


class BatchOutcome(BaseModel):
    """Answer of the ``post_batch`` update: one outcome per command, in the order sent.
    Declines and rejections are outcomes here, not errors, so one bad charge does not hide
    the others' results."""

    outcomes: list[CommandOutcome]


class PeriodClosed(BaseModel):
    """Answer of ``close_period``: the invoice that closed the period, final under ``number``
    (None when nothing had happened since the last invoice, so no period was closed)."""

    sequence: int | None = None
    number: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None


class OpenOutcome(BaseModel):
    """Answer of the ``opened`` update: whether this start created the account, or found it in
    the log (an account that already existed)."""

    created: bool
    account: AccountView
