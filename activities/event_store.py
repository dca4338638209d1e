"""Activities over the Postgres event store: load an account from its log, append events.

Each activity call is one transaction. ``append_events`` writes a whole batch of events and the
updated ``accounts`` row in a single SQL statement, guarded by the expected version, so:

- a retry after the commit succeeded (the acknowledgement was lost) finds its own events
  already stored and returns the same result without writing anything;
- a writer with a stale version gets a non-retryable ``VersionConflict`` and must reload;
- a command id older than the workflow's memory is caught by UNIQUE(account_id, command_id)
  and reported back, so the workflow can decide the batch again without it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import reduce
from typing import Any

from psycopg import AsyncConnection, errors
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import snapshots
from activities.contracts import (
    VERSION_CONFLICT,
    AppendEvents,
    AppendResult,
    LoadAccount,
    RecordedCommand,
)
from activities.rows import event_payload
from domain.account import evolve
from domain.state import AccountState
from domain.upcasting import SCHEMA_VERSIONS
from telemetry import metrics

# One statement appends a batch. It creates the projection row, or moves it on from exactly
# ``expected_version`` (the upsert's WHERE is the version guard), and inserts the events only if
# that row was written. A row missing from the projection is restored too, but only when the log
# itself ends at ``expected_version``, so no version can ever be skipped.
_APPEND = """
WITH account AS (
    INSERT INTO accounts (account_id, currency, balance, version, status, overdraft_limit)
    SELECT %(account_id)s, %(currency)s, %(balance)s, %(version)s, %(status)s, %(overdraft_limit)s
     WHERE %(expected_version)s = (SELECT coalesce(max(version), 0) FROM account_events
                                    WHERE account_id = %(account_id)s)
    ON CONFLICT (account_id) DO UPDATE
       SET balance = EXCLUDED.balance, version = EXCLUDED.version, status = EXCLUDED.status,
           updated_at = now()
     WHERE accounts.version = %(expected_version)s
    RETURNING account_id)
INSERT INTO account_events (event_id, account_id, version, event_type, payload, command_id,
                            command_fingerprint, schema_version)
SELECT e.event_id, account.account_id, e.version, e.event_type, e.payload, e.command_id,
       e.command_fingerprint, e.schema_version
  FROM account, unnest(%(event_ids)s::uuid[], %(versions)s::bigint[], %(types)s::text[],
                       %(payloads)s::jsonb[], %(command_ids)s::text[], %(fingerprints)s::text[],
                       %(schema_versions)s::smallint[])
       AS e(event_id, version, event_type, payload, command_id, command_fingerprint, schema_version)
"""


class EventStore:
    """The event-store activities, bound to one connection pool."""

    def __init__(self, pool: AsyncConnectionPool[Any], *,
                 snapshot_every: int = snapshots.DEFAULT_EVERY) -> None:
        self._pool = pool
        self._snapshot_every = snapshot_every
        self._recent = snapshots.RecentStates()

    @activity.defn(name="load_account")
    async def load_account(self, request: LoadAccount) -> AccountState:
        """The account's state: its latest snapshot and the events after it (an empty state
        when the log has none)."""
        async with self._pool.connection() as conn:
            return (await snapshots.load(conn, request.account_id)).state

    @activity.defn(name="append_events")
    async def append_events(self, request: AppendEvents) -> AppendResult:
        """Append a batch of events, update the account row, and store a snapshot when the
        batch crosses a multiple of K events: one transaction. Timed (``billing_append_seconds``)."""
        started = time.perf_counter()
        try:
            return await self._append(request)
        finally:
            metrics.append_took(time.perf_counter() - started)

    async def _append(self, request: AppendEvents) -> AppendResult:
        async with self._pool.connection() as conn:
            try:
                after = None
                async with conn.transaction():
                    written = (await conn.execute(_APPEND, _append_params(request))).rowcount
                    if written == len(request.events):
                        after = await self._snapshot(conn, request)
                if after is not None:  # committed
                    self._recent.keep(after)
            except errors.UniqueViolation as error:
                if error.diag.constraint_name == "one_event_per_command":
                    found = await _recorded_commands(conn, request)
                    return AppendResult(appended=False, version=request.expected_version,
                                        already_recorded={key: c.version for key, c in found.items()},
                                        recorded=found)
                written = 0  # a version or event id that is taken: the same as writing nothing
            if written == len(request.events):
                return AppendResult(appended=True, version=request.last_version)
            # Nothing was written: a retry of a batch that already committed (wholly, or its
            # first events: see _stored_prefix), or the account moved on without it.
            stored = await _stored_prefix(conn, request)
            if stored == len(request.events):
                return AppendResult(appended=True, version=request.last_version)
            if not stored:
                raise await _version_conflict(conn, request)
        return await self._append(request.without_first(stored))

    async def _snapshot(self, conn: AsyncConnection[Any], request: AppendEvents) -> AccountState | None:
        """In the append's transaction: store a snapshot if the append crosses a multiple of K.
        The state after the append, when known (to keep for the next append), else None."""
        if not self._snapshot_every:
            return None
        state = self._recent.take(request.account_id, request.expected_version)
        crosses = snapshots.crosses(request.expected_version, request.last_version, self._snapshot_every)
        if state is None and crosses:
            state = await snapshots.state_before_append(conn, request.account_id,
                                                        request.expected_version)
        if state is None:
            return None
        after = reduce(evolve, (new.event for new in request.events), state)
        if crosses:
            await snapshots.write(conn, after)
        return after

    @property
    def activities(self) -> list[Callable[..., Any]]:
        """Every activity of this store, for ``Worker(activities=...)``."""
        return [self.load_account, self.append_events]


def _append_params(request: AppendEvents) -> dict[str, Any]:
    return {
        "account_id": request.account_id,
        "expected_version": request.expected_version,
        "version": request.last_version,
        "balance": request.balance,
        "status": request.status.value,
        "currency": request.currency,
        "overdraft_limit": request.overdraft_limit,
        "event_ids": [new.event_id for new in request.events],
        "versions": list(range(request.expected_version + 1, request.last_version + 1)),
        "types": [new.event.type for new in request.events],
        "payloads": [event_payload(new.event) for new in request.events],
        "command_ids": [new.event.command_id for new in request.events],
        "fingerprints": [new.event.command_fingerprint for new in request.events],
        "schema_versions": [SCHEMA_VERSIONS[new.event.type] for new in request.events],
    }


async def _stored_prefix(conn: AsyncConnection[Any], request: AppendEvents) -> int:
    """How many of the request's first events are already stored exactly as sent: same id,
    version, type, command id and payload. Those are this workflow's own earlier write, whose
    result it lost (docs/decisions.md, "an append recognises its own write"); anything stored
    differently is a version conflict."""
    cursor = await conn.execute(
        "SELECT event_id, version, event_type, command_id, payload, command_fingerprint"
        " FROM account_events WHERE event_id = ANY(%s)",
        ([new.event_id for new in request.events],),
    )
    stored = {row[0]: row[1:] for row in await cursor.fetchall()}
    count = 0
    for offset, new in enumerate(request.events, start=1):
        sent = (request.expected_version + offset, new.event.type, new.event.command_id,
                json.loads(event_payload(new.event)), new.event.command_fingerprint)
        if stored.get(new.event_id) != sent:
            break
        count = offset
    return count if count == len(stored) else 0  # ids stored as something else: a conflict


async def _recorded_commands(conn: AsyncConnection[Any],
                             request: AppendEvents) -> dict[str, RecordedCommand]:
    """The request's command ids that the log holds already: where, and what they came to."""
    cursor = await conn.execute(
        "SELECT command_id, version, event_type, payload->>'reason', command_fingerprint"
        " FROM account_events WHERE account_id = %s AND command_id = ANY(%s)",
        (request.account_id, [new.event.command_id for new in request.events
                              if new.event.command_id is not None]),
    )
    return {command_id: RecordedCommand(version=version, event_type=event_type,
                                        reason=reason or "", fingerprint=fingerprint)
            for command_id, version, event_type, reason, fingerprint in await cursor.fetchall()}


async def _version_conflict(conn: AsyncConnection[Any], request: AppendEvents) -> ApplicationError:
    cursor = await conn.execute("SELECT version FROM accounts WHERE account_id = %s",
                                (request.account_id,))
    row = await cursor.fetchone()
    return ApplicationError(
        f"account {request.account_id}: expected version {request.expected_version},"
        f" found {row[0] if row else 'no account'}",
        {"expected_version": request.expected_version, "actual_version": row and row[0]},
        type=VERSION_CONFLICT,
        non_retryable=True,
    )
