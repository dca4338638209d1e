"""Idempotency keys that cannot be misused, and commands that name their currency.

The same key with the same command is a duplicate (the first outcome again); the same key with
another command (kind, amount, description, currency, reason) is refused, names what differs,
and records nothing. The account's memory keeps each key's fingerprint, and so does the log.
"""

from __future__ import annotations

from functools import reduce

import pytest
from pydantic import TypeAdapter
from temporalio.contrib.pydantic import pydantic_data_converter

from domain.account import decide, decide_each, evolve
from domain.commands import AddFunds, Charge, CloseAccount, OpenAccount
from domain.events import CommandRejected, FundsAdded
from domain.memory import PriorOutcome, Recorded
from domain.state import AccountState

ACCOUNT = "acc-1"


def opened(currency: str = "USD") -> AccountState:
    empty = AccountState(ACCOUNT)
    return reduce(evolve, decide(empty, OpenAccount(account_id=ACCOUNT, currency=currency)), empty)


def after(state: AccountState, *commands: AddFunds | Charge | CloseAccount) -> AccountState:
    return decide_each(state, list(commands))[1]


FIRST = AddFunds(command_id="k", amount=500, description="top-up", currency="USD")


def test_the_same_key_with_the_same_command_is_a_duplicate_not_a_reuse():
    state = after(opened(), FIRST)
    [decision], same = decide_each(state, [FIRST])
    assert (decision.events, decision.version, decision.reused) == ([], 2, None)
    assert same == state


@pytest.mark.parametrize("again, differs", [
    (Charge(command_id="k", amount=500, description="top-up", currency="USD"),
     "used for an add_funds, not a charge"),
    (AddFunds(command_id="k", amount=250, description="top-up", currency="USD"),
     "an amount of 500, not 250"),
    (AddFunds(command_id="k", amount=500, description="other", currency="USD"),
     "another description, currency, reason or payout"),
    (AddFunds(command_id="k", amount=500, description="top-up"),
     "another description, currency, reason or payout"),
    (CloseAccount(command_id="k"), "used for an add_funds, not a close"),
], ids=["kind", "amount", "description", "currency", "close"])
def test_the_same_key_with_another_command_is_refused_naming_what_differs(again, differs):
    state = after(opened(), FIRST)
    [decision], unchanged = decide_each(state, [again])

    assert decision.events == [] and decision.version == 2
    assert decision.reused is not None and differs in decision.reused
    assert unchanged == state  # nothing recorded, nothing changed


def test_a_reuse_inside_one_batch_is_refused_too():
    decisions, state = decide_each(opened(), [FIRST, FIRST.model_copy(update={"amount": 7})])
    assert [d.reused for d in decisions] == [None, "the key was used for an amount of 500, not 7"]
    assert state.balance == 500


def test_a_key_learned_from_the_log_keeps_its_fingerprint_and_outcome():
    forgetful = opened()._replace(version=40)
    knowing = forgetful.knowing({"k": Recorded(7, PriorOutcome("declined", "no money"),
                                               FIRST.fingerprint())})
    [same], _ = decide_each(knowing, [FIRST])
    [other], _ = decide_each(knowing, [FIRST.model_copy(update={"amount": 1})])
    assert (same.version, same.prior, same.reused) == (7, PriorOutcome("declined", "no money"), None)
    assert other.reused == "the key was used for an amount of 500, not 1"


def test_a_key_recorded_before_fingerprints_were_kept_is_a_plain_duplicate():
    legacy = reduce(evolve, [FundsAdded(command_id="k", amount=500)], opened())
    [decision], _ = decide_each(legacy, [FIRST.model_copy(update={"amount": 1})])
    assert (decision.events, decision.reused) == ([], None)


def test_a_command_in_another_currency_is_rejected_and_in_the_same_one_applied():
    state = opened("EUR")
    [rejected] = decide(state, AddFunds(command_id="u", amount=5, currency="USD"))
    [applied] = decide(state, AddFunds(command_id="e", amount=5, currency="EUR"))
    assert isinstance(rejected, CommandRejected)
    assert rejected.reason == "the command is in USD, the account in EUR"
    assert isinstance(applied, FundsAdded)


def test_fingerprints_survive_the_state_as_json_and_old_json_still_reads():
    state = after(opened(), FIRST)
    adapter = TypeAdapter(AccountState)
    stored = adapter.dump_python(state, mode="json")

    assert stored["recent_fingerprints"] == {"k": FIRST.fingerprint()}
    assert adapter.validate_python(stored) == state
    legacy = {key: value for key, value in stored.items() if key != "recent_fingerprints"}
    assert adapter.validate_python(legacy).recent_commands.recorded("k") == Recorded(2)


def test_the_memory_survives_json_text_as_activities_and_continue_as_new_carry_it():
    """Validating from JSON text (how an activity's result and a workflow's input arrive) once
    kept only the versions: after any load, a reused key passed as a duplicate."""
    state = after(opened(), FIRST, Charge(command_id="d", amount=10**6),
                  CloseAccount(command_id="bye", reason="left", payout=True))
    payloads = pydantic_data_converter.payload_converter.to_payloads([state])
    [back] = pydantic_data_converter.payload_converter.from_payloads(payloads, [AccountState])

    assert back == state
    assert back.recent_commands.recorded("bye") == state.recent_commands.recorded("bye")
    assert back.recent_commands.recorded("d").prior == PriorOutcome(
        "declined", state.recent_commands.recorded("d").prior.reason)
    [decision], _ = decide_each(back, [AddFunds(command_id="bye", amount=1)])
    assert decision.reused == "the key was used for a close, not an add_funds"
