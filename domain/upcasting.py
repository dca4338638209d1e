"""Events stored in older shapes, read in today's: one small pure function per step.

Every stored event carries the schema version of its payload (``account_events.schema_version``).
``SCHEMA_VERSIONS`` says which version each event type is written in today; an older payload is
upcast one step at a time when read, so ``decide``, ``evolve`` and every projection only ever see
today's shapes, and the log itself is never rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

Payload = dict[str, Any]
Upcaster = Callable[[Payload, datetime], Payload]
"""One step: a payload of version n (and when its event was recorded) -> version n + 1."""

SCHEMA_VERSIONS: dict[str, int] = {
    "ACCOUNT_CREATED": 2,
    "FUND_ADDED": 1,
    "CHARGE_APPLIED": 1,
    "CHARGE_DECLINED": 1,
    "COMMAND_REJECTED": 1,
    "ACCOUNT_CLOSED": 1,
    "REFUND_APPLIED": 1,
    "INVOICE_DRAFTED": 1,
    "INVOICE_FINALIZED": 1,
    "CREDIT_NOTE_ISSUED": 1,
    "BALANCE_PAID_OUT": 1,
}


class UnknownSchemaVersion(ValueError):
    """An event written by newer code than this (or by nobody): it cannot be read safely."""


def _account_created_v1(payload: Payload, recorded_at: datetime) -> Payload:
    """v2 adds the billing period chosen at open and the instant the account opened. Accounts
    opened before v2 bill monthly, from the moment their ACCOUNT_CREATED was recorded."""
    return {**payload, "billing_period": "monthly", "opened_at": recorded_at.isoformat()}


_STEPS: dict[tuple[str, int], Upcaster] = {
    ("ACCOUNT_CREATED", 1): _account_created_v1,
}


def upcast(event_type: str, schema_version: int, payload: Payload, recorded_at: datetime) -> Payload:
    """``payload`` in today's shape of ``event_type``."""
    current = SCHEMA_VERSIONS.get(event_type, 1)
    if not 1 <= schema_version <= current:
        raise UnknownSchemaVersion(f"{event_type} has schema version {schema_version}; this code "
                                   f"reads versions 1 to {current}")
    for version in range(schema_version, current):
        payload = _STEPS[(event_type, version)](payload, recorded_at)
    return payload
