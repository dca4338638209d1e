"""The relay's pure parts: the message of an event, routing by event type, the checkpoint's
encoding, its settings, and the check the fault test counts with (which must be able to fail)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import get_args

import pytest

from activities.rows import StoredEvent
from domain.events import Event
from projections.feed import FeedEvent, FeedPosition
from relay.messages import INVOICE_TYPES, START, Checkpoint, Routes, event_value, messages
from relay.settings import KafkaConfigError, KafkaSettings
from tests.kafka.relay_checks import Received, judge

RECORDED = datetime(2026, 12, 1, 9, 30, 0, 123456, tzinfo=UTC)
HERE = FeedPosition(900, 41)


def event(event_type: str = "FUND_ADDED", payload: dict[str, object] | None = None, *, version: int = 3,
          schema_version: int = 1, at: FeedPosition = HERE) -> FeedEvent:
    stored = StoredEvent(version, event_type, payload or {"amount": 1250, "description": "top-up"}, "cmd-1",
                         "fp", schema_version, RECORDED)
    return FeedEvent(at, uuid.UUID(int=7), "acme", stored)


def test_the_value_carries_exactly_the_issues_fields() -> None:
    assert event_value(event()) == {
        "event_id": str(uuid.UUID(int=7)), "account_id": "acme", "version": 3, "type": "FUND_ADDED",
        "schema_version": 1, "payload": {"amount": 1250, "description": "top-up"},
        "recorded_at": "2026-12-01T09:30:00.123456+00:00"}


def test_an_older_payload_is_upcast_and_labelled_with_todays_schema_version() -> None:
    created = event("ACCOUNT_CREATED", {"account_id": "acme", "currency": "USD", "overdraft_limit": 0},
                    version=1, schema_version=1)
    value = event_value(created)
    assert value["schema_version"] == 2
    assert value["payload"] == {"account_id": "acme", "currency": "USD", "overdraft_limit": 0,
                                "billing_period": "monthly", "opened_at": RECORDED.isoformat()}


def event_types() -> list[str]:
    """Every event type of the domain, from its union of events."""
    return [member.__dataclass_fields__["type"].default for member in get_args(get_args(Event)[0])]


def test_every_event_goes_to_the_account_events_and_the_invoice_events_to_the_invoices_too() -> None:
    routes = Routes.of(KafkaSettings(bootstrap_servers="k:9092"))
    invoices = {"INVOICE_DRAFTED", "INVOICE_FINALIZED", "CREDIT_NOTE_ISSUED"}
    types = event_types()
    assert invoices | {"BALANCE_PAID_OUT", "REFUND_APPLIED", "FUND_ADDED"} <= set(types)
    for event_type in types:
        expected = ("billing.account-events", "billing.invoices") if event_type in invoices else (
            "billing.account-events",)
        assert routes.topics(event_type) == expected, event_type
    assert set(INVOICE_TYPES) == invoices
    assert routes.all_topics == ("billing.account-events", "billing.invoices")


def test_messages_are_keyed_by_account_and_routed_by_type() -> None:
    closing = Routes("events", {"ACCOUNT_CLOSED": ("closures",)})
    sent = messages(event("ACCOUNT_CLOSED", {"reason": "left"}), closing)
    assert [(m.topic, m.key) for m in sent] == [("events", b"acme"), ("closures", b"acme")]
    assert sent[0].value == sent[1].value and json.loads(sent[0].value)["payload"] == {"reason": "left"}


def test_a_checkpoint_round_trips_and_moves_past_a_batch() -> None:
    batch = [event(at=FeedPosition(900, 41)), event(at=FeedPosition(2**62, 42))]
    after = START.after(batch).after(batch[1:])
    assert after == Checkpoint(FeedPosition(2**62, 42), 3, RECORDED.isoformat())
    assert Checkpoint.decode(after.encode()) == after


@pytest.mark.parametrize("raw", [b"", b"[]", b"{}", b'{"transaction_id": "x", "position": 1, "events": 0}',
                                 b"\xff"])
def test_a_value_that_is_no_checkpoint_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not a relay checkpoint"):
        Checkpoint.decode(raw)


def test_relay_variables() -> None:
    settings = KafkaSettings.from_env({"KAFKA_RELAY_ID": "relay-eu.1", "KAFKA_TOPIC_PARTITIONS": "12",
                                       "KAFKA_RELAY_BATCH": "50", "KAFKA_TOPIC_RELAY_CHECKPOINTS": "cp",
                                       "BILLING_RELAY_METRICS_PORT": "9465"})
    assert (settings.relay_id, settings.partitions, settings.relay_batch, settings.checkpoints_topic,
            settings.metrics_port) == ("relay-eu.1", 12, 50, "cp", 9465)
    defaults = KafkaSettings.from_env({})
    assert (defaults.relay_id, defaults.partitions, defaults.relay_batch, defaults.checkpoints_topic,
            defaults.metrics_port) == ("billing-relay", 6, 500, "billing.relay-checkpoints", None)


@pytest.mark.parametrize(("variable", "value"), [
    ("KAFKA_TOPIC_PARTITIONS", "0"), ("KAFKA_RELAY_BATCH", "ten"), ("KAFKA_RELAY_BATCH", "-5"),
    ("KAFKA_RELAY_ID", "has space"), ("BILLING_RELAY_METRICS_PORT", "70000")])
def test_malformed_relay_variables_are_refused(variable: str, value: str) -> None:
    with pytest.raises(KafkaConfigError, match=variable):
        KafkaSettings.from_env({variable: value})


def received(*items: tuple[int, str, int]) -> list[Received]:
    """Messages ``(partition, account, version)`` in order; the event id is "account/version"."""
    return [Received(partition, offset, account, {"event_id": f"{account}/{version}"})
            for offset, (partition, account, version) in enumerate(items)]


LOG = [("a", 1, "a/1"), ("a", 2, "a/2"), ("a", 3, "a/3"), ("b", 1, "b/1")]


def test_the_check_passes_a_clean_topic() -> None:
    verdict = judge(LOG, received((0, "a", 1), (1, "b", 1), (0, "a", 2), (0, "a", 3)))
    assert verdict.clean and verdict.describe().startswith("events=4 received=4 duplicated=0")


def test_the_check_counts_duplicates_gaps_reorderings_and_strays() -> None:
    verdict = judge(LOG, received((0, "a", 1), (0, "a", 3), (0, "a", 2), (0, "a", 3), (1, "a", 9)))
    assert [len(verdict.duplicated), len(verdict.missing), len(verdict.out_of_order)] == [1, 1, 1]
    assert verdict.missing == ["b v1"] and verdict.unknown == ["1@4: a/9"]
    with pytest.raises(AssertionError, match="duplicated=1 missing=1 out_of_order=1"):
        verdict.assert_clean()


def test_the_check_sees_an_account_split_across_partitions() -> None:
    verdict = judge(LOG, received((0, "a", 1), (1, "a", 2), (0, "a", 3), (1, "b", 1)))
    assert verdict.misplaced == ["a v2 at 1@1 (key a)"] and not verdict.clean

