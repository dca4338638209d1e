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
from collections.abc import Callable, Iterator, Sequence
from functools import reduce
from typing import Any
from uuid import UUID, uuid5

from psycopg import AsyncConnection, errors
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.account import AccountState, AccountStatus, evolve
from domain.events import EVENTS, Event

VERSION_CONFLICT = "VersionConflict"
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


class NewEvent(BaseModel):
    """An event the workflow decided, with the id that makes its append idempotent."""

    event_id: UUID
    event: Event


class AppendEvents(BaseModel):
    """Append ``events`` after ``expected_version`` and project the result into ``accounts``."""

    account_id: str
    expected_version: int = Field(ge=0)
    events: list[NewEvent] = Field(min_length=1)
    balance: int
    status: AccountStatus
    currency: str
    overdraft_limit: int

    @classmethod
    def recording(cls, before: AccountState, events: Sequence[Event],
                  after: AccountState) -> AppendEvents:
        """The request that records ``events``, which take the account from ``before`` to
        ``after``, each under its derived id."""
        new_events = [NewEvent.model_construct(event_id=event_id(before.account_id, version, event),
                                               event=event)
                      for version, event in enumerate(events, start=before.version + 1)]
        return cls(
            account_id=before.account_id, expected_version=before.version, events=new_events,
            balance=after.balance, status=after.status, currency=after.currency,
            overdraft_limit=after.overdraft_limit)

    @property
    def last_version(self) -> int:
        return self.expected_version + len(self.events)

    def without_first(self, count: int) -> AppendEvents:
        """The same request for all but its first ``count`` events."""
        return self.model_copy(update={"expected_version": self.expected_version + count,
                                       "events": self.events[count:]})


class AppendResult(BaseModel):
    """``appended`` is False only when some command ids were already in the log; they are listed
    in ``already_recorded`` (command id -> version) and nothing was written."""

    appended: bool
    version: int
    already_recorded: dict[str, int] = Field(default_factory=dict)


class LoadAccount(BaseModel):
    account_id: str


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
INSERT INTO account_events (event_id, account_id, version, event_type, payload, command_id)
SELECT e.event_id, account.account_id, e.version, e.event_type, e.payload, e.command_id
  FROM account, unnest(%(event_ids)s::uuid[], %(versions)s::bigint[], %(types)s::text[],
                       %(payloads)s::jsonb[], %(command_ids)s::text[])
       AS e(event_id, version, event_type, payload, command_id)
"""


def event_payload(event: Event) -> str:
    """The JSON stored in ``account_events.payload``: the event without its type and command id,
    which have columns of their own."""
    return EVENTS.dump_json(event, exclude={"type", "command_id"}).decode()


def event_from_row(event_type: str, payload: dict[str, Any], command_id: str | None) -> Event:
    return EVENTS.validate_python({**payload, "type": event_type, "command_id": command_id})


def _in_order(account_id: str, rows: list[tuple[Any, ...]]) -> Iterator[Event]:
    """The events of ``rows``, refusing a log whose versions are not exactly 1, 2, 3, …"""
    for expected, (version, event_type, payload, command_id) in enumerate(rows, start=1):
        if version != expected:
            raise ApplicationError(f"account {account_id}: version {version} follows {expected - 1}",
                                   type=CORRUPT_LOG)
        yield event_from_row(event_type, payload, command_id)


class EventStore:
    """The event-store activities, bound to one connection pool."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    @activity.defn(name="load_account")
    async def load_account(self, request: LoadAccount) -> AccountState:
        """Rebuild an account's state by folding its whole event log (empty state if none)."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT version, event_type, payload, command_id FROM account_events"
                " WHERE account_id = %s ORDER BY version",
                (request.account_id,),
            )
            rows = await cursor.fetchall()
        return reduce(evolve, _in_order(request.account_id, rows), AccountState(request.account_id))

    @activity.defn(name="append_events")
    async def append_events(self, request: AppendEvents) -> AppendResult:
        """Append a batch of events and update the account row, in one transaction."""
        async with self._pool.connection() as conn:
            try:
                written = (await conn.execute(_APPEND, _append_params(request))).rowcount
            except errors.UniqueViolation as error:
                if error.diag.constraint_name == "one_event_per_command":
                    return AppendResult(appended=False, version=request.expected_version,
                                        already_recorded=await _recorded_commands(conn, request))
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
        return await self.append_events(request.without_first(stored))

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
    }


async def _stored_prefix(conn: AsyncConnection[Any], request: AppendEvents) -> int:
    """How many of the request's first events are already stored exactly as sent: same id,
    version, type, command id and payload. Those are this workflow's own earlier write, whose
    result it lost (docs/decisions.md, "an append recognises its own write"); anything stored
    differently is a version conflict."""
    cursor = await conn.execute(
        "SELECT event_id, version, event_type, command_id, payload FROM account_events"
        " WHERE event_id = ANY(%s)",
        ([new.event_id for new in request.events],),
    )
    stored = {row[0]: row[1:] for row in await cursor.fetchall()}
    count = 0
    for offset, new in enumerate(request.events, start=1):
        sent = (request.expected_version + offset, new.event.type, new.event.command_id,
                json.loads(event_payload(new.event)))
        if stored.get(new.event_id) != sent:
            break
        count = offset
    return count if count == len(stored) else 0  # ids stored as something else: a conflict


async def _recorded_commands(conn: AsyncConnection[Any], request: AppendEvents) -> dict[str, int]:
    """The request's command ids that the log holds already, with their versions."""
    cursor = await conn.execute(
        "SELECT command_id, version FROM account_events"
        " WHERE account_id = %s AND command_id = ANY(%s)",
        (request.account_id, [new.event.command_id for new in request.events
                              if new.event.command_id is not None]),
    )
    return {command_id: version for command_id, version in await cursor.fetchall()}


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
