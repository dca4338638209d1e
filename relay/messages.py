"""What the relay sends: one Kafka message per event and topic, and which topics an event goes to.

Pure: no Kafka, no Postgres. The key is the account id, so one account's events share a
partition and keep their order there. The value is JSON:

    {"event_id": "…", "account_id": "acme", "version": 7, "type": "CHARGE_APPLIED",
     "schema_version": 1, "payload": {"amount": 1250, …}, "recorded_at": "2026-12-01T09:30:00.123456+00:00"}

``payload`` is in today's shape of its type (older stored shapes are upcast, as every reader of
the log sees them), and ``schema_version`` is the version of that shape, so a consumer needs no
upcasters of its own. ``recorded_at`` is ISO 8601 with its UTC offset.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.upcasting import SCHEMA_VERSIONS, upcast
from projections.feed import FeedEvent, FeedPosition
from relay.settings import KafkaSettings

INVOICE_TYPES = ("INVOICE_DRAFTED", "INVOICE_FINALIZED", "CREDIT_NOTE_ISSUED")
"""Event types that also go to the invoices topic: an invoice's whole life, keyed by account.
The draft is there because it alone says what an invoice covers (its period and versions); the
finalization gives it its number; a credit note names the invoice it credits. Every other type
(payouts and refunds included) goes to the account events topic only."""


@dataclass(frozen=True)
class Message:
    """One message to produce."""

    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Routes:
    """Which topics each event type goes to: the account events topic always, so that it holds
    every event of every account with contiguous versions (a consumer can tell a gap), and the
    topics of ``extra`` as well: the invoice events (``INVOICE_TYPES``) to the invoices topic."""

    account_events: str
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: KafkaSettings) -> Routes:
        return cls(settings.account_events_topic,
                   {event_type: (settings.invoices_topic,) for event_type in INVOICE_TYPES})

    def topics(self, event_type: str) -> tuple[str, ...]:
        return (self.account_events, *self.extra.get(event_type, ()))

    @property
    def all_topics(self) -> tuple[str, ...]:
        extra = sorted({topic for topics in self.extra.values() for topic in topics})
        return tuple(dict.fromkeys([self.account_events, *extra]))


def event_value(event: FeedEvent) -> dict[str, Any]:
    """The JSON object of ``event`` (see the module's docstring)."""
    stored = event.stored
    return {
        "event_id": str(event.event_id),
        "account_id": event.account_id,
        "version": stored.version,
        "type": stored.event_type,
        "schema_version": SCHEMA_VERSIONS.get(stored.event_type, stored.schema_version),
        "payload": upcast(stored.event_type, stored.schema_version, stored.payload, stored.recorded_at),
        "recorded_at": stored.recorded_at.isoformat(),
    }


def messages(event: FeedEvent, routes: Routes) -> list[Message]:
    """The messages of one event: the same key and value on each of its topics."""
    value = json.dumps(event_value(event), ensure_ascii=False, separators=(",", ":")).encode()
    key = event.account_id.encode()
    return [Message(topic, key, value) for topic in routes.topics(event.stored.event_type)]


@dataclass(frozen=True)
class Checkpoint:
    """How far the relay has published the feed, stored in Kafka in the transaction of the
    messages it covers: the last feed position published, how many events in all, and when the
    last of them was recorded."""

    at: FeedPosition
    events: int = 0
    last_recorded_at: str | None = None

    def encode(self) -> bytes:
        return json.dumps({"transaction_id": self.at.transaction_id, "position": self.at.position,
                           "events": self.events, "last_recorded_at": self.last_recorded_at},
                          separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Checkpoint:
        """Raise ``ValueError`` on a value this code did not write."""
        try:
            data = json.loads(raw)
            return cls(FeedPosition(int(data["transaction_id"]), int(data["position"])),
                       int(data["events"]), data.get("last_recorded_at"))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a relay checkpoint: {raw[:200]!r} ({error})") from None

    def after(self, events: list[FeedEvent]) -> Checkpoint:
        """The checkpoint once ``events`` (the next ones of the feed) are published."""
        last = events[-1]
        return Checkpoint(last.at, self.events + len(events), last.stored.recorded_at.isoformat())


START = Checkpoint(FeedPosition())
