"""Event ids are derived from an event's place and identity, so a retried decision names its
events the same way, and a different decision at the same place differently."""

from __future__ import annotations

from activities.rows import event_id
from domain.events import ChargeApplied, ChargeDeclined, FundsAdded

FUNDS = FundsAdded(command_id="c1", amount=100)


def test_the_same_event_at_the_same_place_has_the_same_id() -> None:
    assert event_id("acc", 7, FUNDS) == event_id("acc", 7, FundsAdded(command_id="c1", amount=100))


def test_another_account_version_command_or_type_has_another_id() -> None:
    ids = {
        event_id("acc", 7, FUNDS),
        event_id("acc-2", 7, FUNDS),
        event_id("acc", 8, FUNDS),
        event_id("acc", 7, FundsAdded(command_id="c2", amount=100)),
        event_id("acc", 7, ChargeApplied(command_id="c1", amount=100)),
        event_id("acc", 7, ChargeDeclined(command_id="c1", amount=100, reason="no", balance=0)),
    }
    assert len(ids) == 6


def test_fields_cannot_run_into_each_other() -> None:
    """A naive join of account and version ("acc-1" + "1" vs "acc-" + "11") must not collide."""
    assert event_id("acc-1", 11, FUNDS) != event_id("acc-11", 1, FUNDS)
    assert event_id("a:1", 1, FUNDS) != event_id("a", 11, FUNDS)


def test_ids_are_name_based_uuids() -> None:
    assert event_id("acc", 1, FUNDS).version == 5
