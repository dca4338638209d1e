"""The pure account core: ``decide``, ``evolve``, ``decide_each`` and the command models' validation."""

from __future__ import annotations

from functools import reduce

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

import domain.memory as memory
from domain.account import HOLDS_BALANCE_PREFIX, MAX_BALANCE, Decision, decide, decide_each, evolve
from domain.commands import AddFunds, Charge, CloseAccount, Command, OpenAccount, RejectInput
from domain.events import (
    AccountClosed,
    AccountCreated,
    BalancePaidOut,
    ChargeApplied,
    ChargeDeclined,
    CommandRejected,
    FundsAdded,
)
from domain.memory import Recorded
from domain.money import MAX_AMOUNT
from domain.state import AccountState, AccountStatus

ACCOUNT = "acc-1"


def fold(state: AccountState, events) -> AccountState:
    return reduce(evolve, events, state)


def opened(overdraft_limit: int = 0, currency: str = "USD") -> AccountState:
    return fold(AccountState(account_id=ACCOUNT),
                decide(AccountState(account_id=ACCOUNT),
                       OpenAccount(account_id=ACCOUNT, currency=currency,
                                   overdraft_limit=overdraft_limit)))


def run(state: AccountState, *commands) -> AccountState:
    for command in commands:
        state = fold(state, decide(state, command))
    return state


def funded(amount: int, overdraft_limit: int = 0) -> AccountState:
    return run(opened(overdraft_limit), AddFunds(command_id="fund", amount=amount))


# --- open -----------------------------------------------------------------------------------

def test_open_creates_the_account_with_its_currency_and_limit():
    empty = AccountState(account_id=ACCOUNT)
    events = decide(empty, OpenAccount(account_id=ACCOUNT, currency="JPY", overdraft_limit=300))

    assert events == [AccountCreated(account_id=ACCOUNT, currency="JPY", overdraft_limit=300)]
    state = evolve(empty, events[0])
    assert (state.currency, state.overdraft_limit, state.balance, state.version, state.status) == (
        "JPY", 300, 0, 1, AccountStatus.OPEN)
    assert state.recent_commands == {}
    assert state.exists and not empty.exists


def test_opening_an_existing_account_produces_nothing():
    state = funded(100)
    assert decide(state, OpenAccount(account_id=ACCOUNT, currency="EUR", overdraft_limit=5)) == []


# --- add funds, charge ------------------------------------------------------------------------

def test_add_funds_credits_and_remembers_the_command():
    state = opened()
    events = decide(state, AddFunds(command_id="c1", amount=250, description="top-up"))

    assert events == [FundsAdded(command_id="c1", amount=250, description="top-up")]
    after = fold(state, events)
    assert (after.balance, after.version, after.recent_commands) == (250, 2, {"c1": 2})


def test_charge_debits_the_balance():
    state = funded(100)
    events = decide(state, Charge(command_id="c2", amount=30, description="coffee"))

    assert events == [ChargeApplied(command_id="c2", amount=30, description="coffee")]
    after = fold(state, events)
    assert (after.balance, after.version, after.recent_commands["c2"]) == (70, 3, 3)


def test_charge_of_the_whole_balance_is_applied_and_one_more_is_declined():
    state = funded(100)
    assert isinstance(decide(state, Charge(command_id="c", amount=100))[0], ChargeApplied)
    [declined] = decide(state, Charge(command_id="c", amount=101))
    assert isinstance(declined, ChargeDeclined)


def test_charge_reaching_exactly_minus_the_overdraft_limit_is_applied():
    state = funded(100, overdraft_limit=50)
    events = decide(state, Charge(command_id="c", amount=150))

    assert events == [ChargeApplied(command_id="c", amount=150)]
    assert fold(state, events).balance == -50


def test_charge_one_past_the_overdraft_limit_is_declined_and_recorded():
    state = funded(100, overdraft_limit=50)
    [event] = decide(state, Charge(command_id="c", amount=151, description="too much"))

    assert isinstance(event, ChargeDeclined)
    assert (event.command_id, event.amount, event.balance, event.description) == (
        "c", 151, 100, "too much")
    assert "insufficient funds" in event.reason and "151" in event.reason and "50" in event.reason
    after = evolve(state, event)
    assert (after.balance, after.version, after.recent_commands["c"]) == (100, 3, 3)


def test_charge_on_an_overdrawn_account_is_declined():
    state = run(funded(10, overdraft_limit=20), Charge(command_id="c1", amount=30))
    assert state.balance == -20
    [event] = decide(state, Charge(command_id="c2", amount=1))
    assert isinstance(event, ChargeDeclined) and event.balance == -20


def test_add_funds_up_to_max_balance_is_applied_and_one_more_is_rejected():
    state = opened()._replace(balance=MAX_BALANCE - 10)

    assert decide(state, AddFunds(command_id="a", amount=10)) == [FundsAdded(command_id="a", amount=10)]
    [event] = decide(state, AddFunds(command_id="b", amount=11))
    assert isinstance(event, CommandRejected)
    assert event.command_id == "b" and event.command == "add_funds"
    assert str(MAX_BALANCE) in event.reason
    assert fold(state, [event]).balance == MAX_BALANCE - 10


# --- close ------------------------------------------------------------------------------------

def test_close_closes_an_account_with_nothing_on_it():
    state = run(funded(100), Charge(command_id="c", amount=100))
    events = decide(state, CloseAccount(command_id="x", reason="customer left"))

    assert events == [AccountClosed(command_id="x", reason="customer left")]
    after = fold(state, events)
    assert (after.status, after.balance, after.version, after.recent_commands["x"]) == (
        AccountStatus.CLOSED, 0, 4, 4)


@pytest.mark.parametrize("balance", [100, -30])
def test_closing_an_account_with_a_balance_is_refused_naming_it(balance):
    state = run(opened(overdraft_limit=50), AddFunds(command_id="f", amount=130),
                Charge(command_id="c", amount=130 - balance))
    [event] = decide(state, CloseAccount(command_id="x"))

    assert isinstance(event, CommandRejected)
    assert event.reason.startswith(f"{HOLDS_BALANCE_PREFIX}{balance} (minor units of USD)")
    assert fold(state, [event]).status is AccountStatus.OPEN


@pytest.mark.parametrize("balance", [100, -30])
def test_a_payout_settles_the_balance_then_closes(balance):
    state = run(opened(overdraft_limit=50), AddFunds(command_id="f", amount=130),
                Charge(command_id="c", amount=130 - balance))
    events = decide(state, CloseAccount(command_id="x", reason="moved away", payout=True))

    assert events == [BalancePaidOut(amount=balance, reason="moved away", close_id="x"),
                      AccountClosed(command_id="x", reason="moved away")]
    after = fold(state, events)
    assert (after.status, after.balance, after.recent_commands["x"]) == (
        AccountStatus.CLOSED, 0, state.version + 2)


def test_a_payout_needs_a_reason():
    [event] = decide(funded(100), CloseAccount(command_id="x", payout=True, reason=" "))
    assert isinstance(event, CommandRejected) and event.reason == "a payout needs a reason"


def test_a_payout_with_nothing_to_pay_simply_closes():
    assert decide(opened(), CloseAccount(command_id="x", payout=True)) == [AccountClosed(command_id="x")]


@pytest.mark.parametrize("command", [
    AddFunds(command_id="later", amount=5),
    Charge(command_id="later", amount=5),
    CloseAccount(command_id="later"),
])
def test_commands_on_a_closed_account_are_rejected(command):
    state = run(funded(100), CloseAccount(command_id="x", payout=True, reason="refunded"))
    events = decide(state, command)

    assert events == [CommandRejected(command_id="later", command=command.kind,
                                      reason="account is closed")]
    after = fold(state, events)
    assert (after.balance, after.status, after.version) == (0, AccountStatus.CLOSED, 5)
    assert decide(after, command) == []  # a well-formed id is used up by its rejection


# --- before open ------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    AddFunds(command_id="early", amount=5),
    Charge(command_id="early", amount=5),
    CloseAccount(command_id="early"),
])
def test_commands_before_open_are_rejected(command):
    events = decide(AccountState(account_id=ACCOUNT), command)
    assert events == [CommandRejected(command_id="early", command=command.kind,
                                      reason="account does not exist")]


def test_a_rejection_before_open_does_not_make_the_account_exist():
    # regression: `exists` was `version > 0`, and a rejection bumps the version
    state = run(AccountState(account_id=ACCOUNT), AddFunds(command_id="early", amount=5))

    assert not state.exists
    assert decide(state, OpenAccount(account_id=ACCOUNT, currency="USD")) != []
    [event] = decide(state, AddFunds(command_id="second", amount=5))
    assert isinstance(event, CommandRejected)


# --- duplicates -------------------------------------------------------------------------------

@pytest.mark.parametrize("first, again", [
    (AddFunds(command_id="c", amount=5), AddFunds(command_id="c", amount=5)),
    (Charge(command_id="c", amount=5), Charge(command_id="c", amount=5)),
    (Charge(command_id="c", amount=500), Charge(command_id="c", amount=500)),  # declined first
    (CloseAccount(command_id="c"), CloseAccount(command_id="c")),
    # the id is the key, whatever the command says the second time
    (AddFunds(command_id="c", amount=5), Charge(command_id="c", amount=7)),
    (AddFunds(command_id="c", amount=5), CloseAccount(command_id="c")),
])
def test_a_command_id_seen_before_produces_nothing(first, again):
    state = run(funded(100), first)
    assert decide(state, again) == []


def test_a_duplicate_after_close_is_still_a_duplicate_not_a_rejection():
    state = run(funded(100), Charge(command_id="c", amount=5), CloseAccount(command_id="x"))
    assert decide(state, Charge(command_id="c", amount=5)) == []


# --- rejected input ---------------------------------------------------------------------------

def test_reject_input_has_no_command_id_field():
    assert "command_id" not in RejectInput.model_fields
    with pytest.raises(ValidationError):
        RejectInput(command="charge", reason="bad", command_id="c1")


@pytest.mark.parametrize("state", [AccountState(account_id=ACCOUNT), funded(10),
                                   run(funded(10), CloseAccount(command_id="x"))],
                         ids=["before-open", "open", "closed"])
def test_reject_input_is_recorded_without_a_command_id(state):
    command = RejectInput(command="charge", reason="amount: too small", received='{"amount": -1}')
    events = decide(state, command)

    assert events == [CommandRejected(command_id=None, command="charge", reason="amount: too small",
                                      received='{"amount": -1}')]
    after = fold(state, events)
    assert after.version == state.version + 1
    assert (after.balance, after.recent_commands) == (state.balance, state.recent_commands)
    assert decide(after, command) == events  # every malformed delivery is recorded


# --- evolve / fold / memory -------------------------------------------------------------------

def test_evolve_leaves_the_input_state_unchanged():
    state = funded(100)
    evolve(state, ChargeApplied(command_id="c", amount=10))
    assert (state.balance, state.version, state.recent_commands) == (100, 2, {"fund": 2})


def test_fold_of_nothing_is_the_same_state_and_fold_equals_successive_evolves():
    state = opened()
    events = [FundsAdded(command_id="a", amount=5), ChargeApplied(command_id="b", amount=2),
              CommandRejected(command="charge", reason="r"), AccountClosed(command_id="z")]
    assert fold(state, []) == state
    assert fold(state, events) == evolve(evolve(evolve(evolve(state, events[0]), events[1]),
                                                events[2]), events[3])


def test_remember_commands_adds_ids_without_touching_anything_else():
    state = funded(100)
    after = state.knowing({"old-1": Recorded(1), "old-2": Recorded(2)})

    assert after.recent_commands == {"fund": 2, "old-1": 1, "old-2": 2}
    assert (after.balance, after.version) == (state.balance, state.version)
    assert state.recent_commands == {"fund": 2}
    assert decide(after, Charge(command_id="old-1", amount=5)) == []


def test_memory_is_trimmed_to_the_newest_commands(monkeypatch):
    monkeypatch.setattr(memory, "COMMANDS_KEPT", 3)
    state = run(opened(), *(AddFunds(command_id=f"c{i}", amount=1) for i in range(5)))

    assert state.recent_commands == {"c2": 4, "c3": 5, "c4": 6}
    assert state.balance == 5
    # a forgotten id is no longer caught here: the store's unique key is what catches it
    assert decide(state, AddFunds(command_id="c0", amount=1)) == [FundsAdded(command_id="c0", amount=1)]


def test_remember_commands_also_respects_the_memory_size(monkeypatch):
    monkeypatch.setattr(memory, "COMMANDS_KEPT", 3)
    state = run(opened(), *(AddFunds(command_id=f"c{i}", amount=1) for i in range(3)))
    after = state.knowing({"old": Recorded(1)})
    assert len(after.recent_commands) == 3 and "old" in after.recent_commands


def test_default_memory_size_is_2000():
    assert memory.COMMANDS_KEPT == 2_000


def test_command_union_dispatches_on_kind():
    adapter = TypeAdapter(Command)
    assert adapter.validate_python({"kind": "charge", "command_id": "c", "amount": 5}) == Charge(
        command_id="c", amount=5)
    assert isinstance(adapter.validate_python({"kind": "close", "command_id": "c"}), CloseAccount)
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "transfer", "command_id": "c", "amount": 5})


# --- decide_each -----------------------------------------------------------------------------

def test_decide_each_decides_each_command_against_the_state_left_by_the_previous_ones():
    state = funded(100)
    commands = [Charge(command_id="c1", amount=60), Charge(command_id="c2", amount=60),
                AddFunds(command_id="f2", amount=5), Charge(command_id="c1", amount=60),
                RejectInput(command="charge", reason="bad")]

    decisions, after = decide_each(state, commands)

    assert decisions == [
        Decision(events=[ChargeApplied(command_id="c1", amount=60)], balance=40, version=3),
        Decision(events=decide(fold(state, [ChargeApplied(command_id="c1", amount=60)]),
                               commands[1]), balance=40, version=4),
        Decision(events=[FundsAdded(command_id="f2", amount=5)], balance=45, version=5),
        Decision(events=[], balance=45, version=3),  # duplicate: the version that recorded c1
        Decision(events=[CommandRejected(command="charge", reason="bad")], balance=45, version=6),
    ]
    assert isinstance(decisions[1].events[0], ChargeDeclined)
    assert after == fold(state, [e for d in decisions for e in d.events])
    assert state == funded(100)  # the input state is untouched


def test_decide_each_of_nothing_changes_nothing():
    state = funded(100)
    assert decide_each(state, []) == ([], state)


def test_long_folds_keep_exactly_the_newest_commands(monkeypatch):
    monkeypatch.setattr(memory, "COMMANDS_KEPT", 3)
    commands = [AddFunds(command_id=f"c{i}", amount=1) for i in range(20)]
    events = [FundsAdded(command_id=c.command_id, amount=1, command_fingerprint=c.fingerprint())
              for c in commands]

    state = fold(opened(), events)
    _, batched = decide_each(opened(), commands)

    assert state.recent_commands == {"c17": 19, "c18": 20, "c19": 21}
    assert batched == state


# --- command validation -----------------------------------------------------------------------

MONEY_COMMANDS = [AddFunds, Charge]


@pytest.mark.parametrize("model_cls", MONEY_COMMANDS)
@pytest.mark.parametrize("amount", [1, 10**15], ids=["one", "max"])
def test_valid_amounts(model_cls, amount):
    assert model_cls.model_validate({"command_id": "c", "amount": amount}).amount == amount


@pytest.mark.parametrize("model_cls", MONEY_COMMANDS)
@pytest.mark.parametrize("amount", [-1, 0, 1.0, 2.5, True, False, "10", None, 10**15 + 1, [5]],
                         ids=repr)
def test_invalid_amounts_are_refused(model_cls, amount):
    with pytest.raises(ValidationError) as info:
        model_cls.model_validate({"command_id": "c", "amount": amount})
    assert [error["loc"] for error in info.value.errors()] == [("amount",)]


@pytest.mark.parametrize("model_cls", MONEY_COMMANDS)
@pytest.mark.parametrize("payload", [
    {"amount": 5},
    {"command_id": "", "amount": 5},
    {"command_id": "x" * 129, "amount": 5},
    {"command_id": 5, "amount": 5},
    {"command_id": None, "amount": 5},
], ids=["missing", "empty", "129-chars", "int", "null"])
def test_invalid_command_ids_are_refused(model_cls, payload):
    with pytest.raises(ValidationError) as info:
        model_cls.model_validate(payload)
    assert [error["loc"] for error in info.value.errors()] == [("command_id",)]


@pytest.mark.parametrize("model_cls", MONEY_COMMANDS)
def test_command_id_of_128_chars_and_description_of_500_are_accepted(model_cls):
    command = model_cls.model_validate(
        {"command_id": "x" * 128, "amount": 5, "description": "d" * 500})
    assert len(command.command_id) == 128 and len(command.description) == 500


@pytest.mark.parametrize("model_cls", MONEY_COMMANDS)
@pytest.mark.parametrize("extra, field", [
    ({"description": "d" * 501}, "description"),
    ({"description": 5}, "description"),
    ({"currency": "usd"}, "currency"),
    ({"currency": "ZZZ"}, "currency"),
    ({"region": "eu"}, "region"),
    ({"kind": "close"}, "kind"),
])
def test_bad_or_unknown_fields_are_refused(model_cls, extra, field):
    with pytest.raises(ValidationError) as info:
        model_cls.model_validate({"command_id": "c", "amount": 5, **extra})
    assert [error["loc"] for error in info.value.errors()] == [(field,)]


@pytest.mark.parametrize("model_cls", MONEY_COMMANDS)
@pytest.mark.parametrize("payload, field", [
    ({"command_id": "a\x00b", "amount": 5}, "command_id"),
    ({"command_id": "a\nb", "amount": 5}, "command_id"),
    ({"command_id": "a\x7fb", "amount": 5}, "command_id"),
    ({"command_id": "c", "amount": 5, "description": "x\x00y"}, "description"),
    ({"command_id": "c", "amount": 5, "description": "x\x1by"}, "description"),
], ids=["nul-id", "newline-id", "del-id", "nul-description", "escape-description"])
def test_control_characters_are_refused(model_cls, payload, field):
    # Postgres cannot store NUL in text or jsonb; an event it refuses would block the account
    with pytest.raises(ValidationError) as info:
        model_cls.model_validate(payload)
    assert [error["loc"] for error in info.value.errors()] == [(field,)]


@pytest.mark.parametrize("model_cls", MONEY_COMMANDS)
def test_printable_unicode_and_line_breaks_in_descriptions_are_accepted(model_cls):
    command = model_cls.model_validate(
        {"command_id": "kaffee-☕-1", "amount": 5, "description": "Café\nline two\ttab"})
    assert command.command_id == "kaffee-☕-1" and command.description == "Café\nline two\ttab"


def test_commands_are_immutable():
    command = Charge(command_id="c", amount=5)
    with pytest.raises(ValidationError):
        command.amount = 500


@pytest.mark.parametrize("account_id", ["a", "A-b_c.d:9", "x" * 64])
def test_valid_account_ids(account_id):
    assert OpenAccount(account_id=account_id, currency="USD").account_id == account_id


@pytest.mark.parametrize("account_id", [
    "", "x" * 65, "has space", "'; DROP TABLE accounts; --", "a/b", "ünï", "abc\n", " abc", 42,
], ids=repr)
def test_invalid_account_ids_are_refused(account_id):
    with pytest.raises(ValidationError) as info:
        OpenAccount(account_id=account_id, currency="USD")
    assert [error["loc"] for error in info.value.errors()] == [("account_id",)]


@pytest.mark.parametrize("currency", ["USD", "JPY", "KWD", "EUR"])
def test_known_currencies_are_accepted(currency):
    assert OpenAccount(account_id="a", currency=currency).currency == currency


@pytest.mark.parametrize("currency", ["usd", "Usd", "XYZ", "XAU", "XXX", "US", "USDD", "", 840],
                         ids=repr)
def test_bad_currencies_are_refused(currency):
    with pytest.raises(ValidationError) as info:
        OpenAccount(account_id="a", currency=currency)
    assert [error["loc"] for error in info.value.errors()] == [("currency",)]


@pytest.mark.parametrize("limit", [-1, 1.0, True, "5", 10**15 + 1], ids=repr)
def test_bad_overdraft_limits_are_refused(limit):
    with pytest.raises(ValidationError):
        OpenAccount(account_id="a", currency="USD", overdraft_limit=limit)


def test_overdraft_limit_bounds_are_accepted():
    assert OpenAccount(account_id="a", currency="USD", overdraft_limit=10**15).overdraft_limit == 10**15
    assert OpenAccount(account_id="a", currency="USD").overdraft_limit == 0


# --- properties -------------------------------------------------------------------------------

command_ids = st.sampled_from([f"c{i}" for i in range(12)])
amounts = st.integers(min_value=1, max_value=1_000)
commands = st.one_of(
    st.builds(AddFunds, command_id=command_ids, amount=amounts),
    st.builds(Charge, command_id=command_ids, amount=amounts),
    st.builds(Charge, command_id=command_ids, amount=st.integers(1, MAX_AMOUNT)),
    st.builds(CloseAccount, command_id=command_ids),
    st.builds(RejectInput, command=st.sampled_from(["charge", "add_funds"]), reason=st.just("bad")),
)
idempotent_commands = st.one_of(
    st.builds(AddFunds, command_id=command_ids, amount=amounts),
    st.builds(Charge, command_id=command_ids, amount=amounts),
    st.builds(CloseAccount, command_id=command_ids),
)
limits = st.integers(min_value=0, max_value=2_000)


@settings(max_examples=200, deadline=None)
@given(limit=limits, sequence=st.lists(commands, max_size=40))
def test_folding_commands_never_goes_below_the_overdraft_limit(limit, sequence):
    state, log = opened(limit), []
    for command in sequence:
        events = decide(state, command)
        assert len(events) <= 1
        state = fold(state, events)
        log.extend(events)
        assert state.balance >= -limit

    assert state.version == 1 + len(log)
    credited = sum(e.amount for e in log if isinstance(e, FundsAdded))
    debited = sum(e.amount for e in log if isinstance(e, ChargeApplied))
    assert state.balance == credited - debited
    assert fold(opened(limit), log) == state  # replaying the log rebuilds the same state


@settings(max_examples=200, deadline=None)
@given(limit=limits, history=st.lists(commands, max_size=30), command=idempotent_commands)
def test_applying_a_command_twice_equals_applying_it_once(limit, history, command):
    state = run(opened(limit), *history)
    once = run(state, command)
    assert run(once, command) == once
    assert decide(once, command) == []


@settings(max_examples=200, deadline=None)
@given(limit=limits, history=st.lists(commands, max_size=20), batch=st.lists(commands, max_size=20))
def test_decide_each_equals_deciding_one_command_at_a_time(limit, history, batch):
    state = run(opened(limit), *history)
    decisions, after = decide_each(state, batch)

    stepwise = state
    for command, decision in zip(batch, decisions, strict=True):
        events = decide(stepwise, command)
        stepwise = fold(stepwise, events)
        assert decision.events == events
        assert decision.balance == stepwise.balance
        expected_version = stepwise.version if events else stepwise.recent_commands[command.command_id]
        assert decision.version == expected_version
    assert after == stepwise


@settings(max_examples=100, deadline=None)
@given(start=st.integers(MAX_BALANCE - 3 * MAX_AMOUNT, MAX_BALANCE),
       sequence=st.lists(st.builds(AddFunds, command_id=st.uuids().map(str),
                                   amount=st.integers(1, MAX_AMOUNT)), max_size=10))
def test_balance_never_exceeds_max_balance(start, sequence):
    state = opened()._replace(balance=start)
    for command in sequence:
        state = run(state, command)
        assert state.balance <= MAX_BALANCE
