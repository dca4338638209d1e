"""How an event is stored: its row in ``account_events`` and back, and its derived id.

The payload column holds the event without the fields that have columns of their own (type,
command id, command fingerprint).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID, uuid5

from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from domain.events import EVENTS, Event
from domain.upcasting import UnknownSchemaVersion, upcast

CORRUPT_LOG = "CorruptEventLog"

_EVENT_IDS = UUID("6f1d2c1e-5b0a-4f4e-9d57-3a8e0c7b9a21")  # the namespace of derived event ids


def event_id(account_id: str, version: int, event: Event) -> UUID:
    """The id of ``event`` as the ``version``-th event of the account: derived from where it
    goes and what it records, never drawn at random.

    A retried decision names the same event the same way, and a different event at the same
    place differently. A random draw is replayed too, but a retried workflow task may meet other
    updates first and give the same draw to another command; its append then collides with its
    own earlier, refused attempt on every retry.
    """
    key = json.dumps([account_id, version, event.type, event.command_id])
    return uuid5(_EVENT_IDS, key)


def event_payload(event: Event) -> str:
    """The JSON stored in ``account_events.payload``: the event without the fields that have
    columns of their own."""
    return EVENTS.dump_json(event, exclude=_OWN_COLUMNS).decode()


_OWN_COLUMNS = {"type", "command_id", "command_fingerprint"}

STORED_EVENT = "version, event_type, payload, command_id, command_fingerprint, schema_version, recorded_at"
"""The columns of ``StoredEvent``, in order, for a SELECT."""


class StoredEvent(NamedTuple):
    """One row of ``account_events``, as selected by ``STORED_EVENT``."""

    version: int
    event_type: str
    payload: dict[str, Any]
    command_id: str | None
    command_fingerprint: str | None
    schema_version: int
    recorded_at: datetime

    def event(self) -> Event:
        """The event in today's shape (older schema versions upcast); raises
        ``pydantic.ValidationError`` or ``UnknownSchemaVersion`` if it cannot be read."""
        payload = upcast(self.event_type, self.schema_version, self.payload, self.recorded_at)
        return EVENTS.validate_python({**payload, "type": self.event_type,
                                       "command_id": self.command_id,
                                       "command_fingerprint": self.command_fingerprint})


class UnreadableEvent(ValueError):
    """A stored event that does not read as today's event of its type (``version`` of
    ``account_id``); the cause is pydantic's ``ValidationError`` or ``UnknownSchemaVersion``."""

    def __init__(self, account_id: str, version: int, event_type: str, error: Exception) -> None:
        self.account_id, self.version = account_id, version
        self.reason = f"{event_type} does not parse: {error}"
        super().__init__(f"account {account_id}: version {version}: {self.reason}")


def in_order(account_id: str, rows: Iterable[StoredEvent], after: int = 0) -> Iterator[Event]:
    """The events of ``rows``, refusing a log whose versions are not exactly after + 1, + 2, …
    (a ``CORRUPT_LOG`` error, its details the version found) or whose events do not parse
    (``UnreadableEvent``)."""
    for expected, row in enumerate(rows, start=after + 1):
        if row.version != expected:
            raise ApplicationError(f"account {account_id}: version {row.version} follows "
                                   f"{expected - 1}", row.version, type=CORRUPT_LOG)
        try:
            event = row.event()
        except (ValidationError, UnknownSchemaVersion) as error:
            raise UnreadableEvent(account_id, row.version, row.event_type, error) from error
        yield event
