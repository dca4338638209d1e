"""The invoice, computed from events: its figures, its lines, its notes, its errors, and its bytes
(the same events always give the same bytes)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.account import balance_change
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
    InvoiceDrafted,
    InvoiceFinalized,
    RefundApplied,
)
from domain.invoice import (
    AccountFacts,
    Invoice,
    InvoiceError,
    Logged,
    canonical,
    compute_invoice,
    document,
    draft,
    finalize,
    with_credit_note,
)

START = datetime(2026, 11, 1, tzinfo=UTC)
ACCOUNT = AccountFacts("acme", "USD", 0)


def logged(events: list[Event], first_version: int = 1) -> list[Logged]:
    return [Logged(version, START + timedelta(minutes=version), event)
            for version, event in enumerate(events, start=first_version)]


def drafted(sequence: int, first: int, last: int, days: int = 30) -> Logged:
    return Logged(last + 1, START + timedelta(days=days, microseconds=1), InvoiceDrafted(
        command_id=f"invoice-{sequence}-drafted", sequence=sequence, period_start=START,
        period_end=START + timedelta(days=days), first_version=first, last_version=last))


def finalized(sequence: int, version: int, number: str = "INV-2026-000001") -> Logged:
    return Logged(version, START + timedelta(days=30, seconds=5), InvoiceFinalized(
        command_id=f"invoice-{sequence}-finalized", sequence=sequence, number=number))


PERIOD = logged([
    AccountCreated(account_id="acme", currency="USD", opened_at=START),
    FundsAdded(command_id="f1", amount=10_000, description="top-up"),
    ChargeApplied(command_id="c1", amount=2_500, description="API calls"),
    ChargeDeclined(command_id="c2", amount=99_999, reason="insufficient funds", balance=7_500),
    CommandRejected(command="charge", reason="account is closed"),
    ChargeApplied(command_id="c3", amount=300),
    RefundApplied(command_id="r1", amount=500, charge_id="c1", charge_version=3, description="sorry"),
])


def test_a_period_gives_its_lines_and_figures() -> None:
    invoice = compute_invoice(ACCOUNT, PERIOD, drafted(1, 1, 7))
    assert [(line.kind, line.version, line.amount, line.command_id) for line in invoice.lines] == [
        ("charge", 3, 2_500, "c1"), ("charge", 6, 300, "c3"), ("refund", 7, -500, "r1")]
    assert (invoice.lines[2].charge_id, invoice.lines[2].charge_version) == ("c1", 3)
    figures = (invoice.opening_balance, invoice.funds_received, invoice.charges_total,
               invoice.refunds_total, invoice.declined_count, invoice.paid_out, invoice.closing_balance,
               invoice.amount_due)
    assert figures == (0, 10_000, 2_800, -500, 1, 0, 7_700, 0)
    assert (invoice.status, invoice.number, invoice.finalized_at) == ("drafted", None, None)
    assert invoice.drafted_at == START + timedelta(days=30, microseconds=1)


def test_the_amount_due_is_what_brings_the_balance_back_to_zero() -> None:
    events = logged([ChargeApplied(command_id="big", amount=9_000)], first_version=9)
    invoice = compute_invoice(AccountFacts("acme", "USD", 1_000), events, drafted(2, 9, 9))
    assert (invoice.opening_balance, invoice.closing_balance, invoice.amount_due) == (1_000, -8_000, 8_000)
    covered = compute_invoice(AccountFacts("acme", "USD", 9_000), events, drafted(2, 9, 9))
    assert (covered.closing_balance, covered.amount_due) == (0, 0)


@pytest.mark.parametrize("balance", [7_700, -3_000])
def test_the_last_invoice_shows_the_balance_settled_at_closing(balance: int) -> None:
    events = logged([ChargeApplied(command_id="c9", amount=200),
                     BalancePaidOut(amount=balance - 200, reason="customer left", close_id="x"),
                     AccountClosed(command_id="x", reason="customer left")], first_version=10)
    invoice = compute_invoice(AccountFacts("acme", "USD", balance), events, drafted(2, 10, 12))
    assert [line.kind for line in invoice.lines] == ["charge"]
    assert (invoice.paid_out, invoice.closing_balance, invoice.amount_due) == (balance - 200, 0, 0)


def test_an_idle_period_is_a_zero_invoice_without_lines() -> None:
    events = [drafted(1, 1, 7), finalized(1, 9)]
    invoice = compute_invoice(AccountFacts("acme", "USD", 7_700), events, drafted(2, 8, 9))
    assert invoice.lines == () and invoice.declined_count == 0
    assert (invoice.opening_balance, invoice.closing_balance, invoice.charges_total) == (7_700, 7_700, 0)
    empty = compute_invoice(AccountFacts("acme", "USD", 5), [], drafted(3, 10, 9))
    assert (empty.first_version, empty.last_version, empty.lines, empty.closing_balance) == (10, 9, (), 5)


def test_the_same_events_give_the_same_bytes_in_any_order_and_any_time_zone() -> None:
    first = canonical(compute_invoice(ACCOUNT, PERIOD, drafted(1, 1, 7), finalized(1, 9)))
    shuffled = PERIOD[:]
    random.Random(7).shuffle(shuffled)
    elsewhere = timezone(timedelta(hours=-5))
    moved = [Logged(e.version, e.recorded_at.astimezone(elsewhere), e.event) for e in shuffled]
    assert canonical(compute_invoice(ACCOUNT, moved, drafted(1, 1, 7), finalized(1, 9))) == first
    assert b'"recorded_at":"2026-11-01T00:03:00.000000Z"' in first
    assert b" " not in first.replace(b"API calls", b"").replace(b"account is closed", b"")


def test_the_document_survives_a_round_trip_through_json_byte_for_byte() -> None:
    invoice = compute_invoice(ACCOUNT, PERIOD, drafted(1, 1, 7), finalized(1, 9))
    stored = json.loads(json.dumps(document(invoice)))  # as jsonb gives it back
    assert canonical(stored) == canonical(invoice) == canonical(Invoice.model_validate(stored))


def test_finalizing_and_crediting_follow_the_log() -> None:
    invoice = compute_invoice(ACCOUNT, PERIOD, drafted(1, 1, 7), finalized(1, 9))
    assert (invoice.status, invoice.number) == ("finalized", "INV-2026-000001")
    note = Logged(12, START + timedelta(days=31), CreditNoteIssued(
        number="CN-2026-000001", invoice_number="INV-2026-000001", invoice_sequence=1, amount=700,
        refund_id="r2"))
    other = Logged(14, START + timedelta(days=32), CreditNoteIssued(
        number="CN-2026-000002", invoice_number="INV-2026-000002", invoice_sequence=2, amount=1,
        refund_id="r3"))
    credited = compute_invoice(ACCOUNT, PERIOD, drafted(1, 1, 7), finalized(1, 9), [other, note])
    assert [(n.number, n.amount, n.refund_id, n.version) for n in credited.credit_notes] == [
        ("CN-2026-000001", 700, "r2", 12)]
    assert with_credit_note(credited, note) == credited  # listed once, whatever happens
    assert credited.model_copy(update={"credit_notes": ()}) == invoice  # the rest never changes


def test_a_refund_names_the_credit_note_issued_with_it() -> None:
    events = logged([
        RefundApplied(command_id="r2", amount=700, charge_id="c1", charge_version=3),
        CreditNoteIssued(number="CN-2026-000001", invoice_number="INV-2026-000001",
                         invoice_sequence=1, amount=700, refund_id="r2"),
    ], first_version=10)
    invoice = compute_invoice(AccountFacts("acme", "USD", 7_700), events, drafted(2, 10, 11))
    assert [(line.kind, line.amount, line.credit_note) for line in invoice.lines] == [
        ("refund", -700, "CN-2026-000001")]
    assert invoice.closing_balance == 8_400


@pytest.mark.parametrize("events, draft_event, problem", [
    (PERIOD[:3] + PERIOD[4:], drafted(1, 1, 7), "1 of them are missing (first: 4)"),
    (PERIOD, PERIOD[2], "is CHARGE_APPLIED, not INVOICE_DRAFTED"),
])
def test_events_that_cannot_make_the_invoice_are_refused(events: list[Logged], draft_event: Logged,
                                                         problem: str) -> None:
    with pytest.raises(InvoiceError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        compute_invoice(ACCOUNT, events, draft_event)


def test_notes_and_finalizations_of_another_invoice_are_refused() -> None:
    invoice = draft(ACCOUNT, PERIOD, drafted(1, 1, 7))
    with pytest.raises(InvoiceError, match="does not finalize invoice 1"):
        finalize(invoice, finalized(2, 9))
    note = Logged(12, START, CreditNoteIssued(number="CN-1", invoice_number="INV-1", invoice_sequence=1,
                                              amount=1, refund_id="r"))
    with pytest.raises(InvoiceError, match="not final"):
        with_credit_note(invoice, note)


def test_instants_without_a_time_zone_are_refused() -> None:
    naive = [Logged(1, datetime(2026, 11, 1), ChargeApplied(command_id="c", amount=1))]
    with pytest.raises(ValueError, match="time zone"):
        compute_invoice(ACCOUNT, naive, drafted(1, 1, 1))


MONEY_EVENTS = st.one_of(
    st.builds(lambda n: FundsAdded(command_id="f", amount=n), st.integers(1, 10**15)),
    st.builds(lambda n: ChargeApplied(command_id="c", amount=n), st.integers(1, 10**15)),
    st.builds(lambda n: RefundApplied(command_id="r", amount=n, charge_id="c", charge_version=1),
              st.integers(1, 10**15)),
    st.builds(lambda n: ChargeDeclined(command_id="d", amount=n, reason="no", balance=0),
              st.integers(1, 10**15)),
    st.builds(lambda n: BalancePaidOut(amount=n, reason="left", close_id="x"),
              st.integers(-10**15, 10**15)),
)


@settings(max_examples=200, deadline=None)
@given(opening=st.integers(-10**15, 10**15), events=st.lists(MONEY_EVENTS, max_size=30))
def test_the_figures_always_add_up(opening: int, events: list[Event]) -> None:
    period = logged(events, first_version=5)
    invoice = compute_invoice(AccountFacts("acme", "JPY", opening), period,
                              drafted(1, 5, 4 + len(events)))
    assert invoice.closing_balance == opening + sum(balance_change(e) for e in events)
    assert invoice.closing_balance == (invoice.opening_balance + invoice.funds_received
                                       - invoice.charges_total - invoice.refunds_total - invoice.paid_out)
    assert invoice.amount_due == max(0, -invoice.closing_balance)
    assert invoice.charges_total - invoice.refunds_total == sum(
        abs(line.amount) for line in invoice.lines)
    assert canonical(Invoice.model_validate(json.loads(canonical(invoice)))) == canonical(invoice)
