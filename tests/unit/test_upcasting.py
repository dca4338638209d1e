"""Schema versions of stored events (``domain.upcasting``): an old payload is read in today's
shape, one step at a time; a version this code does not know is refused, never guessed at."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from activities.rows import StoredEvent
from domain.events import EVENTS, AccountCreated, FundsAdded
from domain.upcasting import _STEPS, SCHEMA_VERSIONS, UnknownSchemaVersion, upcast

RECORDED_AT = datetime(2025, 3, 14, 15, 9, 26, tzinfo=UTC)
V1_CREATED = {"account_id": "old", "currency": "EUR", "overdraft_limit": 500}


def test_account_created_v1_gains_a_monthly_billing_period_opened_when_it_was_recorded():
    given = copy.deepcopy(V1_CREATED)
    today = upcast("ACCOUNT_CREATED", 1, given, RECORDED_AT)

    assert today == {**V1_CREATED, "billing_period": "monthly", "opened_at": RECORDED_AT.isoformat()}
    assert given == V1_CREATED  # the stored payload is not changed in place
    event = EVENTS.validate_python({**today, "type": "ACCOUNT_CREATED"})
    assert event == AccountCreated(account_id="old", currency="EUR", overdraft_limit=500,
                                   billing_period="monthly", opened_at=RECORDED_AT)


def test_a_payload_in_todays_version_is_read_as_it_is():
    v2 = {**V1_CREATED, "billing_period": "yearly", "opened_at": "2026-01-01T00:00:00+00:00"}
    assert upcast("ACCOUNT_CREATED", 2, v2, RECORDED_AT) == v2  # not overwritten by the v1 defaults
    funds = {"amount": 5, "description": "x"}
    assert upcast("FUND_ADDED", 1, funds, RECORDED_AT) == funds


@pytest.mark.parametrize("event_type, version", [
    ("ACCOUNT_CREATED", 3),  # written by newer code
    ("FUND_ADDED", 2),
    ("CHARGE_APPLIED", 99),
    ("ACCOUNT_CREATED", 0),  # versions start at 1
    ("FUND_ADDED", -1),
])
def test_an_unknown_schema_version_is_refused_naming_the_type_and_version(event_type, version):
    with pytest.raises(UnknownSchemaVersion) as error:
        upcast(event_type, version, {"amount": 1}, RECORDED_AT)
    current = SCHEMA_VERSIONS[event_type]
    assert str(error.value) == (f"{event_type} has schema version {version}; this code reads "
                                f"versions 1 to {current}")


def test_every_older_version_of_every_event_has_a_step_to_the_next():
    """Raising a type's version in SCHEMA_VERSIONS without its upcaster would fail only when an
    old event is read, in production; here it fails at once."""
    missing = [(event_type, version) for event_type, current in SCHEMA_VERSIONS.items()
               for version in range(1, current) if (event_type, version) not in _STEPS]
    assert missing == []
    assert all(key[0] in SCHEMA_VERSIONS and key[1] < SCHEMA_VERSIONS[key[0]] for key in _STEPS)


def test_a_stored_v1_row_reads_as_todays_event():
    row = StoredEvent(1, "ACCOUNT_CREATED", dict(V1_CREATED), None, None, 1, RECORDED_AT)
    assert row.event() == AccountCreated(account_id="old", currency="EUR", overdraft_limit=500,
                                         opened_at=RECORDED_AT)
    newer = row._replace(schema_version=3)
    with pytest.raises(UnknownSchemaVersion):
        newer.event()
    funds = StoredEvent(2, "FUND_ADDED", {"amount": 7, "description": ""}, "f1", "fp", 1, RECORDED_AT)
    assert funds.event() == FundsAdded(command_id="f1", amount=7)
