"""Refunds in the pure core: what the charge's facts decide, and when a credit note number may
be taken at all (``refused_by_the_account``)."""

from __future__ import annotations

from functools import reduce

from domain.account import decide, evolve, refund_problem, refused_by_the_account
from domain.commands import AddFunds, Charge, ChargeFacts, CloseAccount, OpenAccount, RefundCharge
from domain.events import CommandRejected, CreditNoteIssued, RefundApplied
from domain.state import AccountState

ACCOUNT = "acc-1"


def account(*commands) -> AccountState:
    state = AccountState(account_id=ACCOUNT)
    for command in (OpenAccount(account_id=ACCOUNT, currency="USD"), *commands):
        state = reduce(evolve, decide(state, command), state)
    return state


CHARGED = account(AddFunds(command_id="f1", amount=1_000), Charge(command_id="c1", amount=300))
FINAL = ChargeFacts(version=3, amount=300, refunded=100, invoice_sequence=1, invoice_number="INV-2026-000001",
                    credit_note_number="CN-2026-000007")


def refund(command_id: str = "r1", amount: int = 50, facts: ChargeFacts | None = FINAL,
           **extra) -> RefundCharge:
    return RefundCharge(command_id=command_id, charge_id="c1", amount=amount, facts=facts, **extra)


def test_a_refund_of_a_finalized_charge_comes_with_its_credit_note():
    events = decide(CHARGED, refund())

    assert [type(event) for event in events] == [RefundApplied, CreditNoteIssued]
    note = events[1]
    assert isinstance(note, CreditNoteIssued)
    assert (note.number, note.invoice_number, note.invoice_sequence, note.amount, note.refund_id) == (
        "CN-2026-000007", "INV-2026-000001", 1, 50, "r1")


def test_a_refund_of_a_charge_not_yet_invoiced_has_no_note():
    events = decide(CHARGED, refund(facts=ChargeFacts(version=3, amount=300)))

    assert [type(event) for event in events] == [RefundApplied]


def test_what_is_left_to_refund_and_an_unknown_charge_are_problems():
    assert refund_problem(refund(amount=200)) is None  # exactly what is left
    assert "more than the 200 left" in (refund_problem(refund(amount=201)) or "")
    assert "no charge with the key 'c1'" in (refund_problem(refund(facts=ChargeFacts())) or "")
    assert "no charge" in (refund_problem(refund(facts=None)) or "")
    [rejected] = decide(CHARGED, refund(amount=201))
    assert isinstance(rejected, CommandRejected)


def test_a_final_invoice_without_a_note_number_is_rejected_not_applied():
    [rejected] = decide(CHARGED, refund(facts=FINAL.model_copy(update={"credit_note_number": None})))

    assert isinstance(rejected, CommandRejected) and "credit note" in rejected.reason


def test_the_account_refuses_some_refunds_whatever_their_charge():
    closed = account(CloseAccount(command_id="bye"))

    assert not refused_by_the_account(CHARGED, refund(facts=None))
    assert not refused_by_the_account(CHARGED, refund(amount=10**6, facts=None))  # the charge decides that
    assert refused_by_the_account(CHARGED, refund(facts=None, currency="EUR"))
    assert refused_by_the_account(CHARGED, refund(command_id="c1", facts=None))  # a key seen before
    assert refused_by_the_account(closed, refund(facts=None))
    assert refused_by_the_account(AccountState(account_id=ACCOUNT), refund(facts=None))
