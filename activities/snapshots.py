"""Snapshots of account states, so that loading an account reads only the tail of its log.

A snapshot is the account's ``AccountState`` as JSON, the very thing continue-as-new carries,
stored per account and state schema version (``STATE_SCHEMA_VERSION``): a snapshot of another
schema is ignored. ``load`` starts from the latest usable snapshot and folds the events after
it; the append stores a new one when it crosses a multiple of K events, in its own transaction.

The state to store comes from ``RecentStates`` when the process made the account's previous
append (the state after it, moved on by the new events: nothing is read), else from
``state_before_append`` (the latest snapshot and the events after it, read in the transaction).
Under a batched load every append crosses K, so the reads were most of a snapshot's cost.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from functools import reduce
from typing import Any

from psycopg import AsyncConnection
from pydantic import TypeAdapter, ValidationError

from activities.rows import STORED_EVENT, StoredEvent, in_order
from domain.account import evolve
from domain.state import STATE_SCHEMA_VERSION, AccountState

DEFAULT_EVERY = 100
"""K: a snapshot every this many events (``BILLING_SNAPSHOT_EVERY``)."""
RECENT_STATES = 64
"""Accounts whose latest state an event store keeps (each up to ~2 MB with a full memory)."""

_STATE: TypeAdapter[AccountState] = TypeAdapter(AccountState)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    """An account's state, from ``snapshot_version`` (0: no snapshot) plus ``events_read``."""

    state: AccountState
    snapshot_version: int
    events_read: int


async def latest(conn: AsyncConnection[Any], account_id: str) -> AccountState | None:
    """The newest snapshot of ``account_id`` in today's state schema, if one reads."""
    cursor = await conn.execute(
        "SELECT state FROM account_snapshots WHERE account_id = %s AND state_schema_version = %s",
        (account_id, STATE_SCHEMA_VERSION))
    row = await cursor.fetchone()
    if row is None:
        return None
    try:
        state = _STATE.validate_python(row[0])
    except ValidationError as error:  # written by a bug: fold from the start instead
        log.warning("account %s: ignoring a snapshot that does not read: %s", account_id, error)
        return None
    return state if state.account_id == account_id else None


async def load(conn: AsyncConnection[Any], account_id: str) -> Loaded:
    """The account's state: the latest snapshot and the events after it (or the whole log)."""
    start = await latest(conn, account_id) or AccountState(account_id)
    cursor = await conn.execute(
        f"SELECT {STORED_EVENT} FROM account_events WHERE account_id = %s AND version > %s"
        " ORDER BY version", (account_id, start.version))
    rows = [StoredEvent(*row) for row in await cursor.fetchall()]
    state = reduce(evolve, in_order(account_id, rows, after=start.version), start)
    return Loaded(state, start.version, len(rows))


async def write(conn: AsyncConnection[Any], state: AccountState) -> None:
    """Store ``state`` as the account's snapshot, unless a newer one is there already."""
    await conn.execute(_WRITE + " WHERE account_snapshots.version < EXCLUDED.version",
                       _write_params(state))


async def write_fresh(conn: AsyncConnection[Any], state: AccountState) -> None:
    """Store ``state`` as the account's snapshot, whatever is there (a rebuild)."""
    await conn.execute(_WRITE, _write_params(state))


_WRITE = ("INSERT INTO account_snapshots (account_id, state_schema_version, version, state)"
          " VALUES (%s, %s, %s, %s)"
          " ON CONFLICT (account_id, state_schema_version) DO UPDATE"
          " SET version = EXCLUDED.version, state = EXCLUDED.state, created_at = now()")


def _write_params(state: AccountState) -> tuple[Any, ...]:
    return (state.account_id, STATE_SCHEMA_VERSION, state.version, _STATE.dump_json(state).decode())


def crosses(before: int, after: int, every: int) -> bool:
    """Whether going from version ``before`` to ``after`` passes a multiple of ``every``."""
    return every > 0 and after // every > before // every


async def state_before_append(conn: AsyncConnection[Any], account_id: str,
                              before: int) -> AccountState | None:
    """In the append's transaction: the state at version ``before``, folded from the latest
    snapshot; None if a snapshot newer than that is there already (nothing to add)."""
    start = await latest(conn, account_id) or AccountState(account_id)
    if start.version > before:
        return None
    cursor = await conn.execute(
        f"SELECT {STORED_EVENT} FROM account_events WHERE account_id = %s"
        " AND version > %s AND version <= %s ORDER BY version", (account_id, start.version, before))
    rows = [StoredEvent(*row) for row in await cursor.fetchall()]
    return reduce(evolve, in_order(account_id, rows, after=start.version), start)


class RecentStates:
    """The state after the latest append of each of the last ``size`` accounts this process
    appended to. Each is correct forever for its version (the log below it never changes); a
    state is kept only once its append has committed (``keep``), and taken out (``take``)
    before the next append, so a failed one leaves nothing behind."""

    def __init__(self, size: int = RECENT_STATES) -> None:
        self._size = size
        self._states: OrderedDict[str, AccountState] = OrderedDict()

    def take(self, account_id: str, version: int) -> AccountState | None:
        """The account's state at ``version``, if kept; forgotten either way."""
        state = self._states.pop(account_id, None)
        return state if state is not None and state.version == version else None

    def keep(self, state: AccountState) -> None:
        self._states[state.account_id] = state
        while len(self._states) > self._size:
            self._states.popitem(last=False)
