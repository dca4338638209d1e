"""The account: its state, ``decide`` and ``evolve``. The one core.

- ``decide(state, command)`` returns the events a command produces: none when the command id
  was seen before (a duplicate delivery), otherwise exactly one.
- ``evolve(state, event)`` returns the state after one event; every event bumps the version.
- ``decide_each(state, commands)`` decides commands in order, each against the state the ones
  before it left, and says what each came to.

The workflow decides with these, the activities fold the log with them, and replay, checks and
tests call the same functions. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.billing import billing_after, decide_invoice
from domain.commands import (
    AddFunds,
    Charge,
    ChargeFacts,
    CloseAccount,
    Command,
    DraftInvoice,
    FinalizeInvoice,
    OpenAccount,
    RefundCharge,
    RejectInput,
    describe_reuse,
)
from domain.events import (
    AccountClosed,
    AccountCreated,
    BalancePaidOut,
    ChargeApplied,
    ChargeDeclined,
    CommandRejected,
    CreditNoteIssued,
    Event,
    FundsAdded,
    RefundApplied,
)
from domain.memory import PriorOutcome, Recorded
from domain.state import AccountState, AccountStatus

MAX_BALANCE = 10**18
"""Balances stay within ±10^18 minor units, well inside Postgres bigint."""

# The reasons of rejections that callers tell apart (the HTTP gateway answers 404, 409, 422):
# the reason text is the only signal an outcome carries, so these are its contract.
NO_ACCOUNT_REASON = "account does not exist"
CLOSED_REASON = "account is closed"
OTHER_CURRENCY_PREFIX = "the command is in "
"""How the reason of a command in another currency than the account's starts."""
HOLDS_BALANCE_PREFIX = "the account holds a balance of "
"""How the reason of a close refused because the balance is not zero starts."""


def decide(state: AccountState, command: Command) -> list[Event]:
    """The events ``command`` produces against ``state``; ``[]`` when nothing happens (a
    command id seen before, or opening an account that exists)."""
    if isinstance(command, RejectInput):
        return [CommandRejected(command=command.command, reason=command.reason,
                                received=command.received)]
    if isinstance(command, OpenAccount):
        if state.exists:
            return []
        return [AccountCreated(account_id=command.account_id, currency=command.currency,
                               overdraft_limit=command.overdraft_limit,
                               billing_period=command.billing_period, opened_at=command.opened_at)]
    if command.command_id in state.recent_commands:
        return []
    if isinstance(command, DraftInvoice | FinalizeInvoice):
        return decide_invoice(state, command)
    if not state.exists:
        return [_rejected(command, NO_ACCOUNT_REASON)]
    if state.status is AccountStatus.CLOSED:
        return [_rejected(command, CLOSED_REASON)]
    if isinstance(command, AddFunds | Charge | RefundCharge) and command.currency not in (
            None, state.currency):
        return [_rejected(command, f"{OTHER_CURRENCY_PREFIX}{command.currency}, the account in "
                                   f"{state.currency}")]
    if isinstance(command, AddFunds):
        return [_funded(state, command)]
    if isinstance(command, Charge):
        return [_charged(state, command)]
    if isinstance(command, RefundCharge):
        return _refunded(command)
    return _closed(state, command)


def _closed(state: AccountState, command: CloseAccount) -> list[Event]:
    """Close; an account with a balance only with a payout (and a reason for it), recorded first."""
    closed = AccountClosed(command_id=command.command_id, reason=command.reason,
                           command_fingerprint=command.fingerprint())
    if not state.balance:
        return [closed]
    if not command.payout:
        return [_rejected(command, f"{HOLDS_BALANCE_PREFIX}{state.balance} (minor units of "
                                   f"{state.currency}); close with a payout to settle it first")]
    if not command.reason.strip():
        return [_rejected(command, "a payout needs a reason")]
    return [BalancePaidOut(amount=state.balance, reason=command.reason, close_id=command.command_id),
            closed]


def _funded(state: AccountState, command: AddFunds) -> Event:
    if state.balance + command.amount > MAX_BALANCE:
        return _rejected(command, f"balance would exceed the maximum of {MAX_BALANCE}")
    return FundsAdded(command_id=command.command_id, amount=command.amount,
                      description=command.description, command_fingerprint=command.fingerprint())


def _charged(state: AccountState, command: Charge) -> Event:
    if state.balance - command.amount < -state.overdraft_limit:
        return ChargeDeclined(
            command_id=command.command_id, amount=command.amount,
            description=command.description, balance=state.balance,
            reason=f"insufficient funds: balance {state.balance}, overdraft limit "
                   f"{state.overdraft_limit}, charge {command.amount}",
            command_fingerprint=command.fingerprint())
    return ChargeApplied(command_id=command.command_id, amount=command.amount,
                         description=command.description, command_fingerprint=command.fingerprint())


def refund_problem(command: RefundCharge) -> str | None:
    """Why the refund cannot be applied, from the charge's facts in the log; None if it can."""
    facts = command.facts
    if facts is None or not facts.version:
        return f"no charge with the key {command.charge_id!r} on this account"
    left = facts.amount - facts.refunded
    if command.amount > left:
        return (f"a refund of {command.amount} is more than the {left} left to refund of charge "
                f"{command.charge_id!r} ({facts.amount} charged, {facts.refunded} refunded)")
    return None


def refused_by_the_account(state: AccountState, command: RefundCharge) -> bool:
    """Whether the account refuses the refund whatever its charge (a closed account, another
    currency, a key seen before): no credit note number may be taken for it, or a gap is left."""
    chargeable = command.model_copy(update={"facts": ChargeFacts(version=1, amount=command.amount)})
    return not any(isinstance(event, RefundApplied) for event in decide(state, chargeable))


def _refunded(command: RefundCharge) -> list[Event]:
    """The refund; and a credit note when the charge's invoice is final already."""
    if (problem := refund_problem(command)) is not None:
        return [_rejected(command, problem)]
    facts = command.facts
    assert facts is not None
    refund: list[Event] = [RefundApplied(
        command_id=command.command_id, amount=command.amount, charge_id=command.charge_id,
        charge_version=facts.version, description=command.description,
        command_fingerprint=command.fingerprint())]
    if facts.invoice_number is None:
        return refund
    if facts.credit_note_number is None or facts.invoice_sequence is None:
        return [_rejected(command, "the credit note this refund needs has no number")]
    return [*refund, CreditNoteIssued(
        number=facts.credit_note_number, invoice_number=facts.invoice_number,
        invoice_sequence=facts.invoice_sequence, amount=command.amount, refund_id=command.command_id)]


def _rejected(command: AddFunds | Charge | CloseAccount | RefundCharge, reason: str) -> CommandRejected:
    return CommandRejected(command_id=command.command_id, command=command.kind, reason=reason,
                           command_fingerprint=command.fingerprint())


def evolve(state: AccountState, event: Event) -> AccountState:
    """The state after ``event``: the one place that says what each event does to an account
    (with ``balance_change``, which it applies)."""
    currency, overdraft_limit, status = state.currency, state.overdraft_limit, state.status
    balance = state.balance + balance_change(event)
    prior = None
    if isinstance(event, ChargeDeclined):
        prior = PriorOutcome("declined", event.reason)
    elif isinstance(event, CommandRejected):
        prior = PriorOutcome("rejected", event.reason)
    elif isinstance(event, AccountCreated):
        currency, overdraft_limit, status = event.currency, event.overdraft_limit, AccountStatus.OPEN
    elif isinstance(event, AccountClosed):
        status = AccountStatus.CLOSED
    version, memory = state.version + 1, state.recent_commands
    if event.command_id is not None:
        memory = memory.remembering(event.command_id,
                                    Recorded(version, prior, event.command_fingerprint))
    billing = state.billing
    if not isinstance(event, FundsAdded | ChargeApplied | ChargeDeclined):  # the common case first
        billing = billing_after(billing, event)
    return AccountState(state.account_id, currency, overdraft_limit, balance, version, status, memory,
                        billing)


def balance_change(event: Event) -> int:
    """What ``event`` does to the balance, in minor units; ``evolve`` applies it, and the
    statement lists every event for which it is not zero."""
    if isinstance(event, FundsAdded):
        return event.amount
    if isinstance(event, ChargeApplied):
        return -event.amount
    if isinstance(event, RefundApplied):
        return event.amount
    if isinstance(event, BalancePaidOut):
        return -event.amount
    return 0


@dataclass(frozen=True)
class Decision:
    """What one command came to: its events (none for a duplicate), and the balance and
    version right after it. For a duplicate, ``version`` is the event that first recorded it
    and ``prior`` what it came to then, unless it was simply applied; ``reused`` says what
    differs when the key came back with another command (which is refused, not repeated)."""

    events: list[Event]
    balance: int
    version: int
    prior: PriorOutcome | None = None
    reused: str | None = None


def decide_each(state: AccountState,
                commands: list[Command]) -> tuple[list[Decision], AccountState]:
    """Decide ``commands`` in order, each against the state left by the ones before it."""
    decisions = []
    for command in commands:
        events = decide(state, command)
        for event in events:
            state = evolve(state, event)
        if events:
            decisions.append(Decision(events, state.balance, state.version))
            continue
        decisions.append(_repeat(state, command))
    return decisions, state


def _repeat(state: AccountState, command: Command) -> Decision:
    """What a command that changed nothing comes to: a duplicate of the first command under its
    key (or an open of an existing account), or a reused key."""
    first = state.recent_commands.recorded(getattr(command, "command_id", None))
    if first is None:
        return Decision([], state.balance, state.version)
    asked = (command.fingerprint() if isinstance(command, AddFunds | Charge | CloseAccount | RefundCharge)
             else None)
    reused = (describe_reuse(first.fingerprint, asked)
              if first.fingerprint is not None and asked is not None and asked != first.fingerprint
              else None)
    return Decision([], state.balance, first.version, first.prior, reused)
