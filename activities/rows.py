"""How an event is stored: its row in ``account_events`` and back, and its derived id.

The payload column holds the event without the fields that have columns of their own (type,
command id, command fingerprint).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid5

from temporalio.exceptions import ApplicationError

from domain.events import EVENTS, Event

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
    """The JSON stored in ``account_events.payload``: the event without its type and command id,
    which have columns of their own."""
    return EVENTS.dump_json(event, exclude=_OWN_COLUMNS).decode()


_OWN_COLUMNS = {"type", "command_id", "command_fingerprint"}


def event_from_row(event_type: str, payload: dict[str, Any], command_id: str | None,
                   command_fingerprint: str | None = None) -> Event:
    return EVENTS.validate_python({**payload, "type": event_type, "command_id": command_id,
                                   "command_fingerprint": command_fingerprint})


def in_order(account_id: str, rows: list[tuple[Any, ...]]) -> Iterator[Event]:
    """The events of ``rows``, refusing a log whose versions are not exactly 1, 2, 3, …"""
    for expected, (version, event_type, payload, command_id, fingerprint) in enumerate(rows, start=1):
        if version != expected:
            raise ApplicationError(f"account {account_id}: version {version} follows {expected - 1}",
                                   type=CORRUPT_LOG)
        yield event_from_row(event_type, payload, command_id, fingerprint)
